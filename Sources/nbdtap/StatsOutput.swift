import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Opens `path` for writing in place (create, truncate). Never FileManager.createFile:
/// it writes a temporary file and renames it over the target, which turns /dev/null or
/// /dev/stdout into a regular file when nbdtap runs as root.
func openForWriting(_ path: String) -> FileHandle? {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return nil }
    return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
}

/// Writes the final statistics where the user asked: a file, or standard error.
func writeStats(_ text: String, to path: String?) {
    if let path, path != "-" {
        guard let h = openForWriting(path) else {
            warn("cannot write the statistics to \(path): \(String(cString: strerror(errno)))")
            return
        }
        h.write(Data(text.utf8))
        try? h.close()
    } else if path == "-" {
        FileHandle.standardOutput.write(Data(text.utf8))
    } else {
        FileHandle.standardError.write(Data(text.utf8))
    }
}

func warn(_ message: String) {
    FileHandle.standardError.write(Data("nbdtap: \(message)\n".utf8))
}
