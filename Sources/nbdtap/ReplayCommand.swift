import ArgumentParser
import Dispatch
import Foundation
import NBDProtocol
import NBDReplay
import NBDReport

/// `nbdtap replay`: the recorded client's requests sent again to any server, each reply
/// compared with the recorded one.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Re-drive recorded NBD sessions (pcap, pcapng, .nbdt) against a server and report where its answers differ.",
        discussion: """
            Exit status: 0 when every recorded request was sent and every reply and negotiation matched, 1 when something differed or was not sent, 2 on a usage or input error. Docs/replay.md has the details.

            Examples (as in the README):
              nbdtap replay Captures/qemu-img-map/session.pcap --dry-run
              nbdtap replay session.pcap --upstream nbd+unix:///?socket=/tmp/up.sock --allow-writes
            """
    )

    enum ReportFormat: String, ExpressibleByArgument, CaseIterable { case text, json }

    @Argument(help: "Recordings: pcap, pcapng (as tcpdump or `nbdtap proxy --pcap` write them) or .nbdt transcripts.")
    var files: [String] = []

    @Option(name: .long, help: ArgumentHelp("The server to replay against: nbd://HOST[:PORT][/EXPORT] or nbd+unix:///[EXPORT]?socket=PATH. An export name here replaces the recorded one.", valueName: "URI"))
    var upstream: NBDURI?

    @Option(name: .long, help: ArgumentHelp("fast (as fast as the server answers and the recorded queue depth allow), original (the recorded gaps) or scale=N (the recorded gaps times N).", valueName: "fast|original|scale=N"))
    var timing: String = "fast"

    @Flag(name: .customLong("allow-writes"), help: "Allow replaying WRITE, WRITE_ZEROES, TRIM and RESIZE (they change the server's data).")
    var allowWrites = false

    @Flag(name: .customLong("dry-run"), help: "Print the requests that would be sent and send none.")
    var dryRun = false

    @Option(name: .customLong("fill-missing"), help: ArgumentHelp("Hex bytes (such as 00 or deadbeef) sent, repeated, in place of WRITE data the capture lacks; without it such writes are not sent.", valueName: "HEX"))
    var fillMissing: String?

    @Option(name: .customLong("reply-timeout"), help: ArgumentHelp("Seconds the upstream may leave a request (or the negotiation) unanswered before its connection is given up and reported (0: wait for ever).", valueName: "SECONDS"))
    var replyTimeout: Double = 60

    @OptionGroup var ports: CapturePortOptions

    @Option(name: .long, help: ArgumentHelp("Replay only these recorded connections, numbered as nbdtap decode numbers them (such as 1,3-4). By default all are, except the upstream legs of an nbdtap proxy --pcap recording.", valueName: "LIST"))
    var connections: String?

    @Option(name: .long, help: ArgumentHelp("Write the report to FILE instead of standard output.", valueName: "FILE"))
    var report: String?

    @Option(name: .customLong("report-format"), help: "Report format: text or json.")
    var reportFormat: ReportFormat = .text

    @OptionGroup var logging: ReportOptions

    func validate() throws {
        if files.isEmpty { throw ValidationError("give one or more recordings") }
        if upstream == nil && !dryRun { throw ValidationError("give --upstream URI (or --dry-run)") }
        if let u = upstream, u.tls { throw ValidationError("\(u): TLS upstreams are not supported by replay") }
        if !(replyTimeout >= 0) || !replyTimeout.isFinite { throw ValidationError("--reply-timeout \(replyTimeout): give a number of seconds, 0 for none") }
        _ = try parsedTiming()
        _ = try parsedFill()
        _ = try parsedConnections()
    }

    func parsedConnections() throws -> Set<Int>? {
        guard let connections else { return nil }
        var out: Set<Int> = []
        for part in connections.split(separator: ",") {
            let ends = part.split(separator: "-", maxSplits: 1).map { Int($0) }
            guard let a = ends.first ?? nil, a > 0, let b = ends.count == 2 ? ends[1] : a, b >= a, b - a < 1_000_000 else {
                throw ValidationError("--connections \(connections): give numbers and ranges such as 1,3-4")
            }
            out.formUnion(a...b)
        }
        return out
    }

    func parsedTiming() throws -> ReplayConfiguration.Timing {
        switch timing {
        case "fast": return .fast
        case "original": return .scaled(1)
        default:
            if timing.hasPrefix("scale="), let k = Double(timing.dropFirst(6)), k >= 0, k.isFinite { return .scaled(k) }
            throw ValidationError("--timing \(timing): give fast, original or scale=N (N a non-negative number)")
        }
    }

    func parsedFill() throws -> [UInt8]? {
        guard var hex = fillMissing else { return nil }
        if hex.hasPrefix("0x") { hex.removeFirst(2) }
        let digits = Array(hex.utf8)
        guard !digits.isEmpty, digits.count % 2 == 0 else { throw ValidationError("--fill-missing \(fillMissing!): give an even number of hex digits, such as 00 or deadbeef") }
        var out: [UInt8] = []
        var i = 0
        while i < digits.count {
            guard let b = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else {
                throw ValidationError("--fill-missing \(fillMissing!): not hex")
            }
            out.append(b)
            i += 2
        }
        return out
    }


    func run() throws {
        let reader = RecordingReader(paths: files, serverPorts: ports.serverPorts)
        reader.only = try parsedConnections()
        if dryRun {
            try runDry(reader)
            return
        }
        var config = ReplayConfiguration(upstream: upstream!)
        config.timing = try parsedTiming()
        config.allowWrites = allowWrites
        config.fill = try parsedFill()
        if !upstream!.exportName.isEmpty { config.exportName = upstream!.exportName }
        config.logFormat = logging.log == nil ? nil : logging.logFormat
        config.replyTimeout = replyTimeout
        let logOut = try logging.log.map { try OutputFile($0) }
        let driver = ReplayDriver(configuration: config, reader: reader) { text in logOut?.write(text) }
        let result: (report: ReplayReport, total: ConnectionStats, perConnection: [(Int, ConnectionStats)], omitted: Int)
        // SIGINT ends the replay with a report of what was replayed (exit 1).
        signal(SIGINT, SIG_IGN)
        let sigint = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        sigint.setEventHandler { driver.interrupt() }
        sigint.resume()
        defer { sigint.cancel() }
        do {
            result = try withExtendedLifetime(sigint) { try driver.run() }
        } catch let stopped as ReplayDriver.Stopped {
            logOut?.close()
            warn(stopped.reason)
            throw ExitCode(2)
        }
        logOut?.close()
        let text = reportFormat == .json ? result.report.json() : result.report.text()
        guard let out = try? OutputFile(report ?? "-") else {
            warn("cannot write the report to \(report ?? "-"): \(String(cString: strerror(errno)))")
            throw ExitCode(2)
        }
        out.write(text)
        out.close()
        if let path = logging.stats {
            let stats = logging.statsFormat == .json
                ? StatsFormatter.json(total: result.total, perConnection: result.perConnection, omitted: result.omitted) + "\n"
                : StatsFormatter.text(total: result.total, perConnection: result.perConnection, omitted: result.omitted)
            writeStats(stats, to: path)
        }
        for p in result.report.inputProblems { warn(p) }
        if !result.report.inputProblems.isEmpty { throw ExitCode(2) }
        if result.report.connections.isEmpty {
            warn("no NBD connection found")
            throw ExitCode(2)
        }
        if !result.report.allMatched { throw ExitCode(1) }
    }

    /// Prints what would be sent: each connection's negotiation plan and requests.
    func runDry(_ reader: RecordingReader) throws {
        let out = try OutputFile(report ?? "-")
        var text = ""
        var connections = 0
        var more = true
        while more {
            more = reader.step()
            for s in reader.takeStarted() {
                connections += 1
                text += "conn=\(s.connection) starts\(s.midSession ? " (mid-session: the capture has no handshake)" : "")\n"
            }
            for (n, items) in reader.takeItems() {
                for item in items { text += Self.dryLine(n, item) }
            }
            if text.utf8.count > 1 << 16 { out.write(text); text = "" }
        }
        out.write(text)
        out.close()
        for l in reader.leftOut { out.write("conn=\(l.connection) left out: \(l.reason)\n") }
        for f in reader.failures { warn(f.description) }
        if !reader.failures.isEmpty { throw ExitCode(2) }
        if connections == 0 { warn("no NBD connection found"); throw ExitCode(2) }
    }

    static func dryLine(_ n: Int, _ item: WorkloadItem) -> String {
        switch item {
        case .negotiation(let neg):
            if neg.tls { return "conn=\(n) not replayable: the recording switched to TLS\n" }
            let plan = ReplayNegotiator(recorded: neg).plan.map { p -> String in
                switch p.data {
                case .exportName(let name): return "\(p.option.name)(\"\(name)\")"
                case .info(let r): return "\(p.option.name)(\"\(r.exportName)\")"
                case .metaContext(let m): return "\(p.option.name)(\(m.queries.joined(separator: ",")))"
                case .opaque: return p.option.name
                }
            }
            return "conn=\(n) negotiate: \(plan.joined(separator: " "))\n"
        case .request(let r):
            var s = "conn=\(n) id=\(r.id) \(r.header.command.name) offset=0x\(String(r.header.offset, radix: 16)) count=0x\(String(r.effectLength, radix: 16))"
            if !r.header.flags.names.isEmpty { s += " flags=\(r.header.flags.names.joined(separator: "|"))" }
            s += " depth=\(r.depth)"
            if let names = r.contextFilter { s += " contexts=\(names.joined(separator: ","))" }
            if r.missingBytes > 0 { s += " (\(r.missingBytes) data bytes missing from the capture: not sent unless --fill-missing)" }
            return s + "\n"
        case .skipped(let bytes, let d):
            return "conn=\(n) \(bytes) recorded bytes \(d.label) passed over: requests in them are not replayed\n"
        case .end:
            return "conn=\(n) ends\n"
        case .outcome:
            return ""
        }
    }
}
