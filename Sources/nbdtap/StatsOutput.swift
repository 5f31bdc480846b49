import Foundation

/// Writes the final statistics where the user asked: a file, or standard error.
func writeStats(_ text: String, to path: String?) {
    if let path, path != "-" {
        if !FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) {
            FileHandle.standardError.write(Data("nbdtap: cannot write the statistics to \(path)\n".utf8))
        }
    } else if path == "-" {
        FileHandle.standardOutput.write(Data(text.utf8))
    } else {
        FileHandle.standardError.write(Data(text.utf8))
    }
}

func warn(_ message: String) {
    FileHandle.standardError.write(Data("nbdtap: \(message)\n".utf8))
}
