import NBDProtocol
import NBDReport

/// What a replay found: per request whether the replayed reply matched the recorded one,
/// per connection how the negotiation differed. The lists are bounded (a replay against
/// a very different server may differ everywhere); the counts are not.
public struct ReplayReport: Sendable {
    /// A request whose replayed reply differed from its recording, or that was not sent.
    public struct Entry: Sendable {
        public var connection: Int
        public var id: UInt64
        public var command: NBDCommand
        public var flags: CommandFlags
        public var offset: UInt64
        public var length: UInt64
        public var recorded: String
        public var replayed: String
    }

    public struct Connection: Sendable {
        public var number: Int
        /// How the replay's negotiation differs from the recording's, one line each.
        public var negotiation: [String] = []
        /// What the replay did that the recording does not show (options it added), and
        /// what the reader should know (a mid-session start): not differences.
        public var notes: [String] = []
        /// Why the connection was not replayed at all, or stopped early.
        public var problem: String?
        public var sent = 0
        public var matched = 0
        public var differed = 0
        public var skipped = 0
        public var notCompared = 0
        /// Bytes of the recording the decoder passed over (mid-session, gaps): requests
        /// there could not be seen, so they are not replayed.
        public var skippedBytes: UInt64 = 0

        public init(number: Int) { self.number = number }
    }

    public static let maxListed = 10_000

    public var connections: [Connection] = []
    public var differences: [Entry] = []
    public var skipped: [Entry] = []
    public var unlistedDifferences = 0
    public var unlistedSkipped = 0
    /// Requests whose recorded data could not be compared (a gap in the capture) but whose
    /// status matched.
    public var matchedStatusOnly = 0
    public var inputProblems: [String] = []
    /// Recorded connections not replayed on purpose, with why.
    public var leftOut: [String] = []
    public var elapsedNanoseconds: UInt64 = 0
    /// SIGINT ended the replay: the report covers what was replayed until then.
    public var interrupted = false
    /// The recording's own pace: its requests and the capture time from the first to the
    /// last, for comparing the replay's rate with the recorded client's.
    public var recordedRequests = 0
    public var recordedSpanNanoseconds: UInt64 = 0

    public var recordedRequestsPerSecond: Double {
        recordedSpanNanoseconds == 0 ? 0 : Double(recordedRequests) / (Double(recordedSpanNanoseconds) / 1e9)
    }

    public init() {}

    public var sent: Int { connections.reduce(0) { $0 + $1.sent } }
    public var matched: Int { connections.reduce(0) { $0 + $1.matched } }
    public var differed: Int { connections.reduce(0) { $0 + $1.differed } }
    public var skippedCount: Int { connections.reduce(0) { $0 + $1.skipped } }
    public var notCompared: Int { connections.reduce(0) { $0 + $1.notCompared } }
    public var negotiationDiffers: Bool { connections.contains { !$0.negotiation.isEmpty || $0.problem != nil } }
    /// Every recorded request was sent and its reply matched, and every negotiation too:
    /// exit status 0. A request not sent is a reply not verified, so it does not pass.
    public var allMatched: Bool { differed == 0 && skippedCount == 0 && !negotiationDiffers && !interrupted }

    mutating func listDifference(_ e: Entry) {
        if differences.count < Self.maxListed { differences.append(e) } else { unlistedDifferences += 1 }
    }

    mutating func listSkipped(_ e: Entry) {
        if skipped.count < Self.maxListed { skipped.append(e) } else { unlistedSkipped += 1 }
    }

    static func describe(_ e: Entry) -> String {
        let flags = e.flags.names
        return "conn=\(e.connection) id=\(e.id) \(e.command.name) offset=0x\(String(e.offset, radix: 16)) count=0x\(String(e.length, radix: 16))"
            + (flags.isEmpty ? "" : " flags=" + flags.joined(separator: "|"))
    }

    public var requestsPerSecond: Double {
        elapsedNanoseconds == 0 ? 0 : Double(sent) / (Double(elapsedNanoseconds) / 1e9)
    }

    public func text() -> String {
        var s = "replay: \(connections.count) connection\(connections.count == 1 ? "" : "s"), \(sent) requests sent: "
            + "\(matched) matched, \(differed) differed, \(skippedCount) not sent, \(notCompared) not compared"
            + " (\(String(format1(Double(elapsedNanoseconds) / 1e9))) s, \(Int(requestsPerSecond.rounded())) requests/s)\n"
        if recordedRequests > 0 {
            s += "  the recording: \(recordedRequests) requests over \(format1(Double(recordedSpanNanoseconds) / 1e9)) s (\(Int(recordedRequestsPerSecond.rounded())) requests/s)\n"
        }
        if matchedStatusOnly > 0 {
            s += "  \(matchedStatusOnly) of the matches compared status only: the capture lacks some of their recorded data\n"
        }
        if interrupted { s += "interrupted: the report covers what was replayed until SIGINT\n" }
        for p in inputProblems { s += "input: \(p)\n" }
        for l in leftOut { s += "left out: \(l)\n" }
        for c in connections {
            if let p = c.problem { s += "connection \(c.number): \(p)\n" }
            for n in c.negotiation { s += "connection \(c.number): negotiation differs: \(n)\n" }
            for n in c.notes { s += "connection \(c.number): note: \(n)\n" }
            if c.skippedBytes > 0 {
                s += "connection \(c.number): \(c.skippedBytes) recorded bytes passed over (capture started late or has gaps); requests in them are not replayed\n"
            }
        }
        if !differences.isEmpty {
            s += "differences:\n"
            for e in differences { s += "  \(Self.describe(e)): recorded \(e.recorded); replayed \(e.replayed)\n" }
            if unlistedDifferences > 0 { s += "  ... and \(unlistedDifferences) more\n" }
        }
        if !skipped.isEmpty {
            s += "not sent:\n"
            for e in skipped { s += "  \(Self.describe(e)): \(e.replayed)\n" }
            if unlistedSkipped > 0 { s += "  ... and \(unlistedSkipped) more\n" }
        }
        return s
    }

    func format1(_ v: Double) -> String {
        let r = (v * 1000).rounded() / 1000
        return String(r)
    }

    public func json() -> String {
        var o = JSONObject()
        o.number("connections", connections.count)
        o.number("sent", sent)
        o.number("matched", matched)
        o.number("differed", differed)
        o.number("not_sent", skippedCount)
        o.number("not_compared", notCompared)
        o.number("matched_status_only", matchedStatusOnly)
        o.double("elapsed_s", Double(elapsedNanoseconds) / 1e9)
        o.double("requests_per_s", requestsPerSecond)
        o.number("recorded_requests", recordedRequests)
        o.double("recorded_span_s", Double(recordedSpanNanoseconds) / 1e9)
        o.double("recorded_requests_per_s", recordedRequestsPerSecond)
        o.bool("all_matched", allMatched)
        o.bool("interrupted", interrupted)
        o.strings("input_problems", inputProblems)
        o.strings("left_out", leftOut)
        var conns: [String] = []
        for c in connections {
            var j = JSONObject()
            j.number("connection", c.number)
            j.optionalString("problem", c.problem)
            j.strings("negotiation_differences", c.negotiation)
            j.strings("notes", c.notes)
            j.number("sent", c.sent)
            j.number("matched", c.matched)
            j.number("differed", c.differed)
            j.number("not_sent", c.skipped)
            j.number("not_compared", c.notCompared)
            j.number("recorded_bytes_passed_over", c.skippedBytes)
            conns.append(j.finished)
        }
        o.raw("per_connection", "[" + conns.joined(separator: ",") + "]")
        o.raw("differences", "[" + differences.map { Self.json($0, "replayed") }.joined(separator: ",") + "]")
        o.number("differences_not_listed", unlistedDifferences)
        o.raw("not_sent_requests", "[" + skipped.map { Self.json($0, "reason") }.joined(separator: ",") + "]")
        o.number("not_sent_not_listed", unlistedSkipped)
        return o.finished + "\n"
    }

    static func json(_ e: Entry, _ second: String) -> String {
        var j = JSONObject()
        j.number("connection", e.connection)
        j.number("id", e.id)
        j.string("command", e.command.name)
        j.strings("flags", e.flags.names)
        j.number("offset", e.offset)
        j.number("length", e.length)
        if second == "replayed" { j.string("recorded", e.recorded) }
        j.string(second, e.replayed)
        return j.finished
    }
}
