import Foundation
import NBDConversation
import NBDReport
import NIOCore
import NBDTestSupport

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
    var text: [UInt8] = []
    var total = ConnectionStats()
    var per: [ConnectionStats] = []
    for (i, t) in ts.enumerated() {
        var tap = ConversationTap(connection: i + 1, logFormat: format)
        for r in t.records { tap.feed(r.direction, r.bytes, at: r.time, logText: &text) }
        tap.close(at: t.records.last?.time ?? 0, logText: &text)
        total.merge(tap.stats)
        per.append(tap.stats)
    }
    return (String(decoding: text, as: UTF8.self), total, per)
}

func readText(_ u: URL) -> String? { try? String(contentsOf: u, encoding: .utf8) }

