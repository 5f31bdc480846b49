import Foundation
import NBDCapture
import NBDConversation
import NBDReport
import NBDTestSupport
import NIOCore
import Testing

/// `nbdtap decode` on every real capture in Captures/, checked three ways: against the
/// server's own record of the session (nbdkit's log filter, qemu-nbd's trace, nbd-server's
/// transaction log), against the independent reassembly in the `.nbdt` transcripts, and
/// against the expected annotation stored next to each capture (`expected.log`).
struct DecodeGroundTruthTests {
    static let captures: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: capturesDir.path)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: capturesDir.appendingPathComponent($0).appendingPathComponent("session.pcap").path) }.sorted()
    }()

    struct Decoded {
        var log: String
        var sessions: CaptureSessions
        var status: PcapReadStatus
    }

    static func decodePcap(_ name: String, format: LogFormat = .nbdkit) throws -> Decoded {
        let reader = try CaptureReader(file: capturesDir.appendingPathComponent(name).appendingPathComponent("session.pcap").path)
        let sessions = CaptureSessions(logFormat: format)
        var text: [UInt8] = []
        reader.forEachEvent { sessions.handle($0, reader: reader.reassembler, out: &text) }
        sessions.finish(out: &text)
        return Decoded(log: String(decoding: text, as: UTF8.self), sessions: sessions, status: reader.status)
    }

    func file(_ name: String, _ f: String) -> URL { capturesDir.appendingPathComponent(name).appendingPathComponent(f) }

    func linesOf(connection n: Int, _ log: String) -> String {
        log.split(separator: "\n").filter { $0.contains(" connection=\(n) ") }.joined(separator: "\n")
    }

    @Test func everyCaptureIsHere() {
        #expect(Self.captures.count >= 10)
    }

    /// The stored annotation is what the decoder prints today (regenerate with
    /// NBDTAP_UPDATE_EXPECTED=1 after checking the ground-truth tests below still pass).
    @Test(arguments: captures)
    func expectedAnnotation(_ name: String) throws {
        let d = try Self.decodePcap(name)
        #expect(d.status == .endOfFile)
        let url = file(name, "expected.log")
        if ProcessInfo.processInfo.environment["NBDTAP_UPDATE_EXPECTED"] == "1" {
            try d.log.write(to: url, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        #expect(d.log == expected)
    }

    /// The pcap decoder and the transcripts (reassembled by scripts/pcap-to-transcript.py,
    /// an independent implementation) give the same log, line for line; only the final
    /// Disconnect time differs (the transcript ends at the last data, the pcap at FIN).
    @Test(arguments: captures.filter { !["fast-zero-chain", "mid-session", "dropped-packets"].contains($0) })
    func sameLogAsTranscripts(_ name: String) throws {
        let d = try Self.decodePcap(name)
        let dir = capturesDir.appendingPathComponent(name)
        var files = [dir.appendingPathComponent("session.nbdt")]
        if !FileManager.default.fileExists(atPath: files[0].path) {
            files = (1...16).map { dir.appendingPathComponent("session.\($0).nbdt") }.filter { FileManager.default.fileExists(atPath: $0.path) }
        }
        try #require(!files.isEmpty)
        for (i, f) in files.enumerated() {
            let t = try Transcript(parsing: ByteBuffer(bytes: try Data(contentsOf: f)))
            var tap = ConversationTap(connection: i + 1, logFormat: .nbdkit)
            var bytes: [UInt8] = []
            for r in t.records { tap.feed(r.direction, r.bytes, at: r.time, logText: &bytes) }
            tap.close(at: 0, logText: &bytes)
            let text = String(decoding: bytes, as: UTF8.self)
            let strip = { (s: String) in s.split(separator: "\n").filter { !$0.contains("Disconnect transactions") }.map(String.init) }
            #expect(strip(linesOf(connection: i + 1, d.log)) == strip(text), "\(name) connection \(i + 1)")
        }
    }

    /// Requests nbdkit's core rejects before its log filter sees them.
    func rejectedByCore(_ name: String) -> Int {
        guard let debug = try? String(contentsOf: file(name, "nbdkit-debug.log"), encoding: .utf8) else { return 0 }
        return debug.components(separatedBy: "invalid request").count - 1
    }

    @Test(arguments: captures.filter { FileManager.default.fileExists(atPath: capturesDir.appendingPathComponent($0).appendingPathComponent("nbdkit.log").path) && !["fast-zero-chain", "starttls", "mid-session", "dropped-packets"].contains($0) })
    func matchesNBDKitLog(_ name: String) throws {
        let d = try Self.decodePcap(name)
        let truth = try String(contentsOf: file(name, "nbdkit.log"), encoding: .utf8)
        var ours = parseNBDKitLog(d.log).map(signature).filter { !$0.contains("...Extents") }
        let theirs = parseNBDKitLog(truth).map(signature).filter { !$0.contains("...Extents") }
        var extra: [String] = []
        for s in Set(ours) {
            let n = ours.filter { $0 == s }.count - theirs.filter { $0 == s }.count
            if n > 0 { extra += Array(repeating: s, count: n) }
        }
        #expect(extra.count == 2 * rejectedByCore(name), "\(extra)")
        for s in extra { ours.remove(at: ours.firstIndex(of: s)!) }
        #expect(ours.sorted() == theirs.sorted())
    }

    func requests(_ name: String, serverPort: UInt16?) throws -> [TracedRequest] {
        let reader = try CaptureReader(file: file(name, "session.pcap").path)
        var taps: [Int: ConversationDecoder] = [:]
        var out: [TracedRequest] = []
        var events: [ConversationEvent] = []
        reader.forEachEvent { e in
            switch e {
            case .connection(let info):
                if serverPort == nil || info.server.port == serverPort { taps[info.id] = ConversationDecoder() }
            case .data(let c, let dir, let bytes, _, let time):
                guard taps[c] != nil else { return }
                events.removeAll()
                taps[c]!.feed(dir, bytes, at: time, into: &events)
                for ev in events {
                    if case .request(let r) = ev.kind {
                        out.append(TracedRequest(type: Int(r.header.command.rawValue), flags: Int(r.header.flags.rawValue), offset: r.header.offset, length: r.header.length))
                    }
                }
            case .gap, .end:
                break
            }
        }
        return out
    }

    @Test(arguments: ["qemu-nbd-allocation-depth", "fast-zero-chain", "qemu10-convert", "qemu10-map", "qemu10-io-all"])
    func matchesQemuNBDTrace(_ name: String) throws {
        let trace = qemuTrace(try String(contentsOf: file(name, "qemu-nbd-trace.log"), encoding: .utf8))
        try #require(!trace.requests.isEmpty)
        var port: UInt16? = nil
        if name == "fast-zero-chain" {
            // ports.txt: "client port N (qemu-nbd), upstream port M (nbdkit)".
            let text = try String(contentsOf: file(name, "ports.txt"), encoding: .utf8)
            port = UInt16(text.split(separator: " ")[2])
        }
        #expect(try requests(name, serverPort: port) == trace.requests)
        let d = try Self.decodePcap(name)
        let ours = d.sessions.finished.reduce(into: [String: Int]()) { acc, s in
            if port == nil || d.sessions.numbered[s.0]?.server.port == port {
                for (_, c) in s.1.commands { for (k, v) in c.errors { acc[k, default: 0] += Int(v) } }
            }
        }
        #expect(ours == trace.errors)
    }

    /// qemu 10 to qemu-nbd 10: extended headers on every connection, and one compliance
    /// note per WRITE without PAYLOAD_LEN, as many as qemu-nbd's own
    /// nbd_co_receive_ext_payload_compliance trace lines; no violation.
    @Test(arguments: ["qemu10-convert", "qemu10-map", "qemu10-io-all"])
    func qemu10ComplianceNotesMatchTrace(_ name: String) throws {
        let trace = try String(contentsOf: file(name, "qemu-nbd-trace.log"), encoding: .utf8)
        let traced = trace.split(separator: "\n").filter { $0.hasPrefix("nbd_co_receive_ext_payload_compliance") && $0.contains("without payload flag") }.count
        let d = try Self.decodePcap(name)
        let noted = d.sessions.finished.reduce(0) { $0 + Int($1.1.compliance["write_without_payload_len"] ?? 0) }
        #expect(noted == traced)
        #expect(!d.log.contains("Violation"))
        let connects = d.log.split(separator: "\n").filter { $0.contains(" Connect ") }
        #expect(!connects.isEmpty && connects.allSatisfy { $0.contains("extended=1") && $0.contains("eflags=0x1ced") })
        if name != "qemu10-map" { #expect(traced > 0) }
    }

    /// qemu 10's client with nbdkit 1.32: extended headers refused (nbdkit -v says so), the
    /// session falls back to structured replies with compact headers and no note.
    @Test func qemu10MixedFallsBackToStructuredReplies() throws {
        let d = try Self.decodePcap("qemu10-mixed")
        let debug = try String(contentsOf: file("qemu10-mixed", "nbdkit-debug.log"), encoding: .utf8)
        #expect(debug.contains("replying to unknown (0xb) with NBD_REP_ERR_UNSUP"))
        #expect(d.log.contains("...Option opt=EXTENDED_HEADERS reply=ERR_UNSUP"))
        #expect(d.log.contains("structured=1 extended=0"))
        #expect(!d.log.contains("Violation") && !d.log.contains("Compliance"))
    }

    @Test func fastZeroChainUpstreamMatchesNBDKitLog() throws {
        let text = try String(contentsOf: file("fast-zero-chain", "ports.txt"), encoding: .utf8)
        let upstream = UInt16(text.split(separator: " ")[6])!
        let d = try Self.decodePcap("fast-zero-chain")
        let n = try #require(d.sessions.numbered.first { $0.value.server.port == upstream }?.key)
        let truth = try String(contentsOf: file("fast-zero-chain", "nbdkit.log"), encoding: .utf8)
        let ours = linesOf(connection: n, d.log)
        #expect(requestCounts(ours) == requestCounts(truth))
        #expect(replyCounts(ours) == replyCounts(truth))
        #expect(requestCounts(ours)["Zero trim=1 fua=0 fast=1", default: 0] >= 1)
    }

    @Test func nbdServerMatchesTransactionLog() throws {
        let log = nbdServerTransactionLog(try Data(contentsOf: file("nbd-server", "transaction.log")))
        try #require(!log.requests.isEmpty)
        #expect(try requests("nbd-server", serverPort: nil) == log.requests)
        let d = try Self.decodePcap("nbd-server")
        let errors = d.sessions.finished.flatMap { $0.1.commands.map { $0.1.errorCount } }.reduce(0, +)
        #expect(Int(errors) == log.errors.values.reduce(0, +))
    }

    /// Request lines of an nbdkit-format log as `Action offset=.. count=.. flags`, in order,
    /// for the given connection, without ids (a capture that lost requests renumbers them).
    func requestSequence(_ log: String, ids: ClosedRange<Int>? = nil) -> [String] {
        parseNBDKitLog(log).filter { !$0.leave && (ids?.contains($0.id) ?? true) }.map { "\($0.action)\($0.rest)" }
    }

    /// Started after the handshake: every request nbdkit logged inside the capture window
    /// (ids 2-22 by the nbdkit log's timestamps, see the capture's README) is found, in
    /// order, with its outcome; nothing else.
    @Test func midSessionCapture() throws {
        let d = try Self.decodePcap("mid-session")
        let truth = try String(contentsOf: file("mid-session", "nbdkit.log"), encoding: .utf8)
        #expect(requestSequence(d.log) == requestSequence(truth, ids: 2...22))
        #expect(d.sessions.numbered[1]?.synSeen == false)
        let ours = parseNBDKitLog(d.log).filter(\.leave).map { $0.rest.components(separatedBy: " return=").last! }
        let theirs = parseNBDKitLog(truth).filter { $0.leave && (2...22).contains($0.id) }.map { $0.rest.components(separatedBy: " return=").last! }
        #expect(ours == theirs)
        #expect(!d.log.contains("Violation"))
    }

    /// Frames removed from a real capture (see the capture's notes.md): the gaps are
    /// reported with their sizes, the two requests whose headers were lost are missing and
    /// no other, the two replies whose headers were lost leave their requests unanswered,
    /// and everything else matches nbdkit's log.
    @Test func droppedPacketsCapture() throws {
        let d = try Self.decodePcap("dropped-packets")
        let truth = try String(contentsOf: file("dropped-packets", "nbdkit.log"), encoding: .utf8)
        var expected = requestSequence(truth)
        // ids 14 (READ header lost) and 34 (WRITE header lost), removing the later first.
        expected.remove(at: 33)
        expected.remove(at: 13)
        #expect(requestSequence(d.log) == expected)
        let stats = d.sessions.finished.first!.1
        #expect(stats.gapBytes == 1448 + 28 + 1448 + 16 + 1448)
        let abandoned = parseNBDKitLog(d.log).filter { $0.leave && $0.rest.contains("error=ENOTCONN") }
        #expect(abandoned.count == 2)
        let replied = parseNBDKitLog(d.log).filter { $0.leave && $0.rest.hasSuffix("return=0") }
        #expect(replied.count == 46)
        #expect(!d.log.contains("fatal=1"))
    }

    /// STARTTLS: the wire is decodable up to the ACK, which nbdkit's -v log confirms it
    /// sent; after it both directions are opaque TLS and nothing is reported as an error.
    @Test func starttlsCapture() throws {
        let d = try Self.decodePcap("starttls")
        let debug = try String(contentsOf: file("starttls", "nbdkit-debug.log"), encoding: .utf8)
        #expect(debug.contains("replying to NBD_OPT_STARTTLS with NBD_REP_ACK"))
        #expect(d.log.contains("Option opt=STARTTLS ..."))
        #expect(d.log.contains("...Option opt=STARTTLS reply=ACK"))
        #expect(d.log.contains("TLS starttls=1"))
        #expect(!d.log.contains("Violation"))
        #expect(parseNBDKitLog(d.log).isEmpty)  // the requests are inside TLS
    }
}
