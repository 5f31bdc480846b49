import Foundation
import NBDConversation
import NBDReport
import NIOCore

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func captureDir(_ name: String) -> URL {
    repoRoot.appendingPathComponent("Captures").appendingPathComponent(name)
}

/// The transcripts of a capture, one per connection, in connection order (the recorder
/// writes `session.nbdt` for one connection, `session.K.nbdt` for several).
func transcripts(_ name: String) throws -> [Transcript] {
    let dir = captureDir(name)
    let single = dir.appendingPathComponent("session.nbdt")
    if FileManager.default.fileExists(atPath: single.path) {
        return [try Transcript(parsing: ByteBuffer(bytes: try Data(contentsOf: single)))]
    }
    var out: [Transcript] = []
    var k = 1
    while true {
        let u = dir.appendingPathComponent("session.\(k).nbdt")
        guard FileManager.default.fileExists(atPath: u.path) else { break }
        out.append(try Transcript(parsing: ByteBuffer(bytes: try Data(contentsOf: u))))
        k += 1
    }
    return out
}

/// Runs every connection of a capture through ConversationTap and returns the log text
/// and the merged statistics, as the pcap decoder and the proxy would.
func runTaps(_ ts: [Transcript], format: LogFormat) -> (String, ConnectionStats, [ConnectionStats]) {
    var text = ""
    var total = ConnectionStats()
    var per: [ConnectionStats] = []
    for (i, t) in ts.enumerated() {
        var tap = ConversationTap(connection: i + 1, logFormat: format)
        for r in t.records { tap.feed(r.direction, r.bytes, at: r.time, logText: &text) }
        tap.close(at: t.records.last?.time ?? 0, logText: &text)
        total.merge(tap.stats)
        per.append(tap.stats)
    }
    return (text, total, per)
}

/// One request or reply line of an nbdkit log filter log, parsed by regular expression
/// straight from the text (independent of nbdtap's formatter).
struct NBDKitLine: Hashable {
    var connection: Int
    var leave: Bool
    var action: String
    var id: Int
    /// Everything after `id=N`, e.g. ` offset=0x0 count=0x1000 fua=0 ...`.
    var rest: String
}

let requestActions: Set<String> = ["Read", "Write", "Flush", "Trim", "Zero", "Extents", "Cache"]

func parseNBDKitLog(_ text: String) -> [NBDKitLine] {
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
func signature(_ l: NBDKitLine) -> String {
    var rest = l.rest
    if l.leave, let r = rest.range(of: " return=") { rest = String(rest[r.lowerBound...]) }
    return "\(l.leave ? "..." : "")\(l.action)\(rest)"
}

func readText(_ u: URL) -> String? { try? String(contentsOf: u, encoding: .utf8) }

/// Runs a shell pipeline on some text and returns its output.
func shell(_ command: String, input: String) throws -> String {
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
