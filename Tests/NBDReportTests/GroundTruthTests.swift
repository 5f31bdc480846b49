import Foundation
import NBDTestSupport
import NBDConversation
import NBDReport
import Testing

/// Recorded sessions whose ground truth is nbdkit's own log filter (see each capture's
/// README.md for how it was made).
let nbdkitSessions = ["nbdsh-all-structured", "nbdsh-all-simple", "qemu-img-convert", "oldstyle",
                      "nbdinfo-list", "nbdcopy-multiconn", "error-filter"]

/// Sessions with one request in flight at a time, where nbdkit's ids follow wire order so
/// each line can be compared exactly, id by id.
let sequentialSessions: Set<String> = ["nbdsh-all-structured", "nbdsh-all-simple", "qemu-img-convert", "oldstyle", "error-filter"]

struct GroundTruthTests {
    /// Requests nbdkit's core rejects before any filter sees them (the -v log says
    /// "invalid request"): they are on the wire, so nbdtap logs them and nbdkit does not.
    func rejectedByCore(_ name: String) -> Int {
        guard let debug = readText(captureDir(name).appendingPathComponent("nbdkit-debug.log")) else { return 0 }
        return debug.components(separatedBy: "invalid request").count - 1
    }

    @Test(arguments: nbdkitSessions)
    func requestAndReplyLinesMatchNBDKitLog(_ name: String) throws {
        let ts = try transcripts(name)
        try #require(!ts.isEmpty, "no transcript in Captures/\(name)")
        let truth = parseNBDKitLog(try #require(readText(captureDir(name).appendingPathComponent("nbdkit.log"))))
        try #require(!truth.isEmpty)
        let (text, _, _) = runTaps(ts, format: .nbdkit)
        let ours = parseNBDKitLog(text)

        // Same requests and outcomes, per connection, counted with their flags.
        let truthSigs = truth.map(signature).filter { !$0.contains("...Extents") }
        var ourSigs = ours.map(signature).filter { !$0.contains("...Extents") }
        var extra: [String] = []
        for s in Set(ourSigs) {
            let surplus = ourSigs.filter { $0 == s }.count - truthSigs.filter { $0 == s }.count
            if surplus > 0 { extra += Array(repeating: s, count: surplus) }
        }
        // Each request nbdkit's core rejected adds one request and one error reply line.
        #expect(extra.count == 2 * rejectedByCore(name), "lines not in nbdkit's log: \(extra)")
        for s in extra { if let i = ourSigs.firstIndex(of: s) { ourSigs.remove(at: i) } }
        #expect(ourSigs.sorted() == truthSigs.sorted())

        if sequentialSessions.contains(name) {
            // Exact text after the timestamp, id by id.
            let byKey = Dictionary(ours.map { ("\($0.connection) \($0.leave) \($0.id)", $0) }, uniquingKeysWith: { a, _ in a })
            for t in truth {
                let o = try #require(byKey["\(t.connection) \(t.leave) \(t.id)"], "no line for \(t)")
                if t.action == "Extents" && t.leave {
                    // With REQ_ONE the wire carries one extent; nbdkit logs the plugin's list.
                    #expect(o.rest.hasSuffix(t.rest.components(separatedBy: " return=").last!))
                    continue
                }
                #expect(o == t)
            }
        }
    }

    /// The README's sed pipeline gives the same counts on nbdtap's log as on nbdkit's. Not on
    /// `oldstyle`: there nbdkit's core rejects a WRITE_ZEROES before its log filter sees it
    /// (nbdkit-debug.log: "invalid request"), so only the wire shows that Zero.
    @Test(arguments: nbdkitSessions.filter { $0 != "oldstyle" })
    func fastZeroPipelineAgrees(_ name: String) throws {
        let pipeline = #"sed -n '/Zero.*\.\./ s/.*\(fast=.\).*/\1/p' | sort | uniq -c"#
        let truth = try #require(readText(captureDir(name).appendingPathComponent("nbdkit.log")))
        let (text, _, _) = runTaps(try transcripts(name), format: .nbdkit)
        #expect(try shell(pipeline, input: text) == shell(pipeline, input: truth))
    }

    @Test func allCommandsSessionCountsEveryFlag() throws {
        let (_, stats, _) = runTaps(try transcripts("nbdsh-all-structured"), format: .nbdkit)
        let zero = try #require(stats[command: "WRITE_ZEROES"])
        #expect(zero.requests == 4)
        #expect(zero.fast0 == 2 && zero.fast1 == 2)
        #expect(zero.flagCount("NO_HOLE") == 2)
        #expect(zero.flagCount("FAST_ZERO") == 2)
        #expect(stats[command: "WRITE"]?.flagCount("FUA") == 1)
        #expect(stats[command: "READ"]?.flagCount("DF") == 1)
        #expect(stats[command: "READ"]?.errors == ["EINVAL": 1])
        #expect(stats[command: "BLOCK_STATUS"]?.flagCount("REQ_ONE") == 1)
        #expect(stats[command: "DISC"]?.requests == 1)
    }
}

/// Per-connection statistics are bounded; the total keeps every connection.
struct PerConnectionStatsTests {
    @Test func keepsTheMostRecentAndCountsTheRest() {
        var p = PerConnectionStats(limit: 3)
        var total = ConnectionStats()
        for n in 1...5000 {
            var s = ConnectionStats()
            s.connections = 1
            p.append(n, s)
            total.merge(s)
        }
        #expect(p.kept.map(\.0) == [4998, 4999, 5000])
        #expect(p.omitted == 4997 && total.connections == 5000)
        #expect(StatsFormatter.text(total: total, perConnection: p.kept, omitted: p.omitted).hasPrefix("(4997 earlier connections counted in the total only)\n"))
    }
}
