import Foundation

/// One request or reply line of an nbdkit log filter log, parsed by regular expression
/// straight from the text (independent of nbdtap's formatter).
public struct NBDKitLine: Hashable {
    public var connection: Int
    public var leave: Bool
    public var action: String
    public var id: Int
    /// Everything after `id=N`, e.g. ` offset=0x0 count=0x1000 fua=0 ...`.
    public var rest: String
}

public let requestActions: Set<String> = ["Read", "Write", "Flush", "Trim", "Zero", "Extents", "Cache"]

public func parseNBDKitLog(_ text: String) -> [NBDKitLine] {
    let re = try! NSRegularExpression(pattern: #"^\S+ \S+ connection=(\d+) (\.\.\.)?(\w+) id=(\d+)(.*)$"#)
    var out: [NBDKitLine] = []
    for line in text.split(separator: "\n") {
        let s = String(line)
        guard let m = re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) else { continue }
        func g(_ i: Int) -> String? {
            let r = m.range(at: i)
            return r.location == NSNotFound ? nil : String(s[Range(r, in: s)!])
        }
        let action = g(3)!
        guard requestActions.contains(action) else { continue }
        out.append(NBDKitLine(connection: Int(g(1)!)!, leave: g(2) != nil, action: action, id: Int(g(4)!)!, rest: g(5)!))
    }
    return out
}

/// The parameters of a line without per-run values (ids, and connection numbers, which
/// nbdkit counts per export open rather than per TCP connection).
public func signature(_ l: NBDKitLine) -> String {
    var rest = l.rest
    if l.leave, let r = rest.range(of: " return=") { rest = String(rest[r.lowerBound...]) }
    return "\(l.leave ? "..." : "")\(l.action)\(rest)"
}

/// Runs a shell pipeline on some text and returns its output.
public func shell(_ command: String, input: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    let inPipe = Pipe(), outPipe = Pipe()
    p.standardInput = inPipe
    p.standardOutput = outPipe
    try p.run()
    inPipe.fileHandleForWriting.write(input.data(using: .utf8)!)
    try inPipe.fileHandleForWriting.close()
    let out = outPipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: out, as: UTF8.self)
}
