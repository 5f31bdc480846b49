import Foundation
import NBDTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A recorded session replayed against a fresh server of the kind that served it.
struct ReplayCase: CustomTestStringConvertible, Sendable {
    enum Server: Sendable {
        /// nbdkit with its log filter first, then these arguments (filters, plugin, params).
        case nbdkit([String])
        /// qemu-nbd with the request trace, of qemu 7.2 (`qemu10` false) or 10, on an image
        /// the shell command `image` makes in the scratch folder.
        case qemuNBD(qemu10: Bool, image: String, args: [String])
    }

    var capture: String
    var file = "session.pcap"
    var server: Server
    /// The capture writes: replaying needs --allow-writes.
    var writes = true
    /// Every reply is expected to match (false where the recorded server was random).
    var matches = true

    var testDescription: String { "\(capture)/\(file)" }

    static let q10 = Peers.qemu10Bin

    static let all: [ReplayCase] = [
        ReplayCase(capture: "nbdsh-all-simple", server: .nbdkit(["memory", "1M"])),
        ReplayCase(capture: "nbdsh-all-structured", server: .nbdkit(["memory", "1M"])),
        ReplayCase(capture: "oldstyle", server: .nbdkit(["--oldstyle", "memory", "1M"])),
        ReplayCase(capture: "qemu-img-convert", server: .nbdkit(["memory", "16M"])),
        ReplayCase(capture: "qemu10-mixed", server: .nbdkit(["memory", "8M"])),
        ReplayCase(capture: "nbdcopy-multiconn", server: .nbdkit(["memory", "512M"])),
        ReplayCase(capture: "error-filter", server: .nbdkit(["--filter=error", "memory", "1M", "error=EIO", "error-rate=50%"]), matches: false),
        ReplayCase(capture: "qemu-img-map", server: .nbdkit(["data",
            "( 0x11 )*4096 @0x10000 ( 0x22 )*32768 @0x100000 ( 0x33 )*65536 @0x380000 ( 0x44 )*4096 @0x3ff000 ( 0x55 )*4096", "size=4M"]),
            writes: false),
        ReplayCase(capture: "nbdinfo-list", server: .nbdkit(["--filter=exportname", "data", "@0x10000 ( 0x55 )*4096 @0x80000 ( 0xaa )*65536", "size=1M",
            "exportname=disk1", "exportname=disk2", "exportname-list=explicit", "exportdesc=fixed:test disk"]), writes: false),
        // The upstream leg of the chain: qemu-nbd's requests to nbdkit with the nozero filter.
        ReplayCase(capture: "fast-zero-chain", file: "session-upstream.nbdt",
                   server: .nbdkit(["--filter=nozero", "memory", "1M", "zeromode=plugin", "fastzeromode=slow"])),
        ReplayCase(capture: "qemu-nbd-allocation-depth", server: .qemuNBD(qemu10: false, image: """
            qemu-img create -q -f qcow2 base.qcow2 1M
            qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 256k 64k' base.qcow2 >/dev/null
            qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 1M
            qemu-io -f qcow2 -c 'write -P 0x33 64k 64k' -c 'write -z 512k 64k' top.qcow2 >/dev/null
            """, args: ["-f", "qcow2", "-A", "top.qcow2"]), writes: false),
        ReplayCase(capture: "qemu10-io-all", server: .qemuNBD(qemu10: true, image: "truncate -s 8M disk.raw",
                                                              args: ["-f", "raw", "--discard=unmap", "disk.raw"])),
        ReplayCase(capture: "qemu10-convert", server: .qemuNBD(qemu10: true, image: "truncate -s 8M target.raw", args: ["-f", "raw", "target.raw"])),
        ReplayCase(capture: "qemu10-map", server: .qemuNBD(qemu10: true, image: """
            \(q10)/qemu-img create -q -f qcow2 disk.qcow2 4M
            \(q10)/qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 256k 128k' -c 'write -z 1M 64k' \
                -c 'write -P 0x33 2112k 64k' -c 'write -P 0x44 4032k 64k' disk.qcow2 >/dev/null
            """, args: ["-f", "qcow2", "-t", "disk.qcow2"]), writes: false),
    ]
}

/// `nbdtap replay` against real servers: the server's own record (nbdkit's log filter,
/// qemu-nbd's request trace, nbd-server's transaction log) must show the recorded
/// request counts, which that server's record from the recording session gives.
@Suite(.enabled(if: Peers.enabledWithQemu10("nbdkit", "qemu-nbd", "qemu-img", "qemu-io", "nbdsh", "nbd-server")))
struct ReplayTests {
    static func capture(_ dir: String, _ file: String = "session.pcap") -> String {
        repoRoot.appendingPathComponent("Captures/\(dir)/\(file)").path
    }

    /// Runs nbdtap replay; returns its result and the text report.
    func replay(_ s: Scratch, _ files: [String], upstream: String?, _ extra: [String] = []) throws -> (Scratch.Result, String) {
        try? FileManager.default.removeItem(atPath: s.path("report.txt"))
        var args = ["replay"] + files + ["--report", s.path("report.txt")] + extra
        if let upstream { args += ["--upstream", upstream] }
        let r = try s.run(nbdtapBinary, args, timeout: 120)
        return (r, s.contents("report.txt"))
    }

    func unixURI(_ sock: String, _ export: String = "") -> String { "nbd+unix:///\(export)?socket=\(sock)" }

    @Test(arguments: ReplayCase.all)
    func replaysWithTheRecordedRequestCounts(_ c: ReplayCase) throws {
        let s = try Scratch()
        let dir = repoRoot.appendingPathComponent("Captures/\(c.capture)").path
        let uri: String
        var trace: String?
        switch c.server {
        case .nbdkit(let args):
            uri = unixURI(try s.nbdkit(args))
        case .qemuNBD(let qemu10, let image, let args):
            if qemu10 { try Peers.requireQemu10() } else { try Peers.require("qemu-nbd", "qemu-img", "qemu-io") }
            let made = try s.run("/bin/sh", ["-c", image])
            try #require(made.status == 0, "\(made.output)")
            let sock = s.path("qemu.sock")
            trace = s.path("qemu-nbd.trace")
            try s.start(qemu10 ? Peers.qemu10("qemu-nbd") : "qemu-nbd",
                        ["-k", sock, "--trace", "nbd_co_receive_request_decode_type,file=\(trace!)"] + args, name: "qemu-nbd")
            try s.waitFor(sock)
            uri = unixURI(sock)
        }
        let (r, report) = try replay(s, [dir + "/" + c.file], upstream: uri, c.writes ? ["--allow-writes"] : [])
        if c.matches {
            #expect(r.status == 0, "\(r.output)\n\(report)")
            #expect(report.contains(" 0 differed, 0 not sent"), "\(report)")
        } else {
            #expect(r.status == 0 || r.status == 1, "\(r.output)\n\(report)")
        }
        // The server's record of the replay against its record of the recording.
        switch c.server {
        case .nbdkit:
            let recorded = try String(contentsOfFile: dir + "/nbdkit.log", encoding: .utf8)
            // nbdkit logs each request as it arrives, before its reply: the log is complete
            // once the replay has its replies.
            let replayed = s.contents("nbdkit.log")
            #expect(!requestCounts(recorded).isEmpty || c.capture == "nbdinfo-list")
            #expect(requestCounts(replayed) == requestCounts(recorded), "\(replayed)")
            if c.capture == "nbdinfo-list" {
                // Negotiation only (and a map): the exports each connection opened.
                let exports = { (log: String) in log.split(separator: "\n").filter { $0.contains(" Connect export=") }.map { $0.split(separator: " ")[4] } }
                #expect(exports(replayed) == exports(recorded), "\(replayed)")
            }
        case .qemuNBD:
            let recorded = try String(contentsOfFile: dir + "/qemu-nbd-trace.log", encoding: .utf8)
            let replayed = (try? String(contentsOfFile: trace!, encoding: .utf8)) ?? ""
            #expect(!qemuDecodeTypeCounts(recorded).isEmpty)
            #expect(qemuDecodeTypeCounts(replayed) == qemuDecodeTypeCounts(recorded), "\(replayed)")
        }
    }

    /// nbd-server, the reference server: its transaction log of the replay against the
    /// one of the recording.
    @Test func nbdServerSessionReplays() throws {
        let s = try Scratch()
        let port = freePort()
        let disk = s.path("disk.img")
        _ = try s.run("/usr/bin/truncate", ["-s", "1M", disk])
        try nbdServerConfig(port: port, disk: disk, log: s.path("transaction.log"))
            .write(toFile: s.path("nbd-server.cfg"), atomically: true, encoding: .utf8)
        let server = try s.start("nbd-server", ["-C", s.path("nbd-server.cfg"), "-d"])
        try waitUntil("nbd-server to listen on \(port)") { tcpListening(port) }
        let (r, report) = try replay(s, [Self.capture("nbd-server")], upstream: "nbd://127.0.0.1:\(port)/export1", ["--allow-writes"])
        #expect(r.status == 0, "\(r.output)\n\(report)")
        try waitUntil("nbd-server to exit after its client") { !server.isRunning }
        let recorded = try Data(contentsOf: URL(fileURLWithPath: repoRoot.appendingPathComponent("Captures/nbd-server/transaction.log").path))
        let replayed = try Data(contentsOf: URL(fileURLWithPath: s.path("transaction.log")))
        #expect(!nbdServerActionCounts(recorded).isEmpty)
        #expect(nbdServerActionCounts(replayed) == nbdServerActionCounts(recorded))
    }

    /// A recording made through `nbdtap proxy --pcap` of reads of known data: replayed
    /// against the same data nothing differs; against data that differs in one known
    /// range exactly the reads of that range are listed; behind nbdkit's error filter
    /// failing every read, exactly the reads are listed, with the errno.
    @Test func readsAgainstSameChangedAndFailingData() throws {
        let s = try Scratch()
        let same = "( 0x11 )*65536 ( 0x22 )*65536 ( 0x33 )*65536"
        let upstream = try s.nbdkit(["data", same, "size=1M"], name: "recorded")
        let pcap = s.path("reads.pcap")
        let proxySock = s.path("proxy.sock")
        let proxy = try s.start(nbdtapBinary, ["proxy", "--listen", unixURI(proxySock), "--upstream", unixURI(upstream), "--pcap", pcap, "--log", s.path("proxy.log")], name: "proxy")
        try s.waitFor(proxySock)
        let reads = [(0, 4096), (65536, 4096), (65536 + 61440, 8192), (131072 + 4096, 65536), (1048576 - 4096, 4096)]
        let script = """
            h.add_meta_context("base:allocation")
            h.connect_uri(os.environ["uri"])
            for off, n in [\(reads.map { "(\($0.0), \($0.1))" }.joined(separator: ", "))]:
                h.pread(n, off)
            h.block_status(1048576, 0, lambda *a: 0)
            h.shutdown()
            """
        let client = try s.nbdsh(unixURI(proxySock), script)
        try #require(client.status == 0, "\(client.output)")
        kill(proxy.processIdentifier, SIGTERM)
        try waitForExit(proxy)

        // The same data: every reply matches, and nothing needs --allow-writes.
        let sameSock = try s.nbdkit(["data", same, "size=1M"], name: "same")
        var (r, report) = try replay(s, [pcap], upstream: unixURI(sameSock))
        #expect(r.status == 0, "\(r.output)\n\(report)")
        #expect(report.contains("\(reads.count + 2) matched, 0 differed, 0 not sent"), "\(report)")

        // One byte value differs in 64 KiB..128 KiB: the reads overlapping it, exactly.
        let changedSock = try s.nbdkit(["data", "( 0x11 )*65536 ( 0x2a )*65536 ( 0x33 )*65536", "size=1M"], name: "changed")
        (r, report) = try replay(s, [pcap], upstream: unixURI(changedSock))
        #expect(r.status == 1, "\(r.output)\n\(report)")
        let listed = report.split(separator: "\n").filter { $0.contains(" READ offset=") }.map { line -> Int in
            let f = line.split(separator: " ").first { $0.hasPrefix("offset=0x") }!
            return Int(f.dropFirst(9), radix: 16)!
        }
        let expected = reads.filter { $0.0 < 131072 && $0.0 + $0.1 > 65536 }.map(\.0)
        #expect(listed == expected, "\(report)")
        #expect(report.contains("2 differed"), "\(report)")

        // Every read failed by the server: each READ listed with EIO, the rest matched.
        let failingSock = try s.nbdkit(["--filter=error", "data", same, "size=1M", "error=EIO", "error-pread-rate=100%"], name: "failing")
        (r, report) = try replay(s, [pcap], upstream: unixURI(failingSock), ["--report-format", "json"])
        #expect(r.status == 1, "\(r.output)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.utf8)) as? [String: Any], "\(report)")
        let diffs = try #require(json["differences"] as? [[String: Any]])
        #expect(diffs.count == reads.count)
        #expect(diffs.allSatisfy { ($0["command"] as? String) == "READ" && ($0["replayed"] as? String)?.contains("error=EIO") == true }, "\(diffs)")
        #expect(Set(diffs.compactMap { $0["offset"] as? Int }) == Set(reads.map(\.0)))
        #expect(json["matched"] as? Int == 2)  // BLOCK_STATUS and DISC
        #expect(json["all_matched"] as? Bool == false)
    }

    /// A capture with bytes dropped: what can be sent is, the write whose data has a hole
    /// is reported not sent (or sent with the pattern under --fill-missing), and the
    /// passed-over bytes are reported.
    @Test func captureWithGapsReplaysWhatItCan() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "4M"])
        var (r, report) = try replay(s, [Self.capture("dropped-packets")], upstream: unixURI(sock), ["--allow-writes"])
        #expect(r.status == 1, "\(r.output)")
        #expect(report.contains("recorded bytes passed over"), "\(report)")
        let notSent = report.split(separator: "\n").filter { $0.contains("data bytes are not in the capture") }
        #expect(!notSent.isEmpty, "\(report)")
        let sock2 = try s.nbdkit(["memory", "4M"], name: "filled")
        (r, report) = try replay(s, [Self.capture("dropped-packets")], upstream: unixURI(sock2), ["--allow-writes", "--fill-missing", "00"])
        #expect(!report.contains("data bytes are not in the capture"), "\(report)")
        // The server received those writes (its log has one Write more per filled request).
        let written = { (log: String) in log.split(separator: "\n").filter { $0.contains(" Write id=") && $0.hasSuffix("...") }.count }
        #expect(written(s.contents("filled.log")) == written(s.contents("nbdkit.log")) + notSent.count)
    }

    /// A capture that starts after the handshake: the replay negotiates what its requests
    /// need, sends every request from the first whole one, and says so.
    @Test func midSessionCaptureReplaysFromItsFirstWholeRequest() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "1M"])
        let (r, report) = try replay(s, [Self.capture("mid-session")], upstream: unixURI(sock), ["--allow-writes"])
        #expect(r.status == 0 || r.status == 1, "\(r.output)")
        #expect(report.contains("the recording starts after its handshake"), "\(report)")
        // The requests nbdtap decode finds in the capture are the ones the server got.
        let decoded = try s.run(nbdtapBinary, ["decode", Self.capture("mid-session"), "--log", s.path("decoded.log")])
        #expect(decoded.status == 0)
        #expect(requestCounts(s.contents("nbdkit.log")) == requestCounts(s.contents("decoded.log")), "\(s.contents("nbdkit.log"))")
        #expect(!requestCounts(s.contents("decoded.log")).isEmpty)
    }

    /// A TLS session cannot be replayed (its requests are encrypted): it is reported so.
    @Test func tlsSessionIsReportedNotReplayable() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "1M"])
        let (r, report) = try replay(s, [Self.capture("starttls")], upstream: unixURI(sock), ["--allow-writes"])
        #expect(r.status == 1, "\(r.output)")
        #expect(report.contains("TLS"), "\(report)")
    }

    /// Writes need --allow-writes: without it the replay stops with exit 2 before sending
    /// any write, and the server's log shows none; --dry-run sends nothing at all.
    @Test func writesNeedPermissionAndDryRunSendsNothing() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "1M"])
        var (r, _) = try replay(s, [Self.capture("nbdsh-all-simple")], upstream: unixURI(sock))
        #expect(r.status == 2, "\(r.output)")
        #expect(r.output.contains("--allow-writes"), "\(r.output)")
        (r, _) = try replay(s, [Self.capture("nbdsh-all-simple")], upstream: nil, ["--dry-run"])
        #expect(r.status == 0, "\(r.output)")
        #expect(requestCounts(s.contents("nbdkit.log"), actions: ["Write", "Trim", "Zero"]).isEmpty, "\(s.contents("nbdkit.log"))")
        // The dry run lists every request of the recording: those of the capture's checked
        // log (which its own test holds against nbdkit's log; nbdkit's log lacks the READ
        // past the end, refused before its filters).
        let expected = try String(contentsOfFile: repoRoot.appendingPathComponent("Captures/nbdsh-all-simple/expected.log").path, encoding: .utf8)
        let listed = s.contents("report.txt").split(separator: "\n").filter { $0.contains(" id=") && !$0.contains(" DISC ") }.count
        #expect(listed == requestCounts(expected).values.reduce(0, +), "\(s.contents("report.txt"))")
    }

    /// Usage errors exit 2 (1 means "replies differed").
    @Test func usageErrorsExitTwo() throws {
        let s = try Scratch()
        var (r, _) = try replay(s, [Self.capture("nbdsh-all-simple")], upstream: nil)
        #expect(r.status == 2, "\(r.output)")
        (r, _) = try replay(s, [Self.capture("nbdsh-all-simple")], upstream: "nbd://127.0.0.1:1", ["--timing", "sometimes"])
        #expect(r.status == 2, "\(r.output)")
        (r, _) = try replay(s, [s.path("missing.pcap")], upstream: "nbd://127.0.0.1:1", ["--dry-run"])
        #expect(r.status == 2, "\(r.output)")
        #expect(r.output.contains("missing.pcap"), "\(r.output)")
    }

    /// Replays a capture against nbdkit memory 1M with its log in replay.log, and decodes
    /// the capture into decoded.log.
    func replayAndDecode(_ s: Scratch, _ capture: String, _ extra: [String]) throws {
        let sock = try s.nbdkit(["memory", "1M"])
        let (r, _) = try replay(s, [Self.capture(capture)], upstream: unixURI(sock), ["--allow-writes", "--log", s.path("replay.log")] + extra)
        #expect(r.status == 0, "\(r.output)")
        _ = try s.run(nbdtapBinary, ["decode", Self.capture(capture), "--log", s.path("decoded.log")])
    }

    /// The replayed session's log is in the proxy's format: with nothing skipped, its
    /// requests are the recording's, as `nbdtap decode` logs them, line for line (times
    /// and the connection's negotiation aside).
    @Test func replayLogDiffsAgainstTheDecodedRecording() throws {
        let s = try Scratch()
        try replayAndDecode(s, "nbdsh-all-structured", ["--timing", "scale=0.5"])
        func requests(_ log: String) -> [String] {
            log.split(separator: "\n").map { $0.split(separator: " ", maxSplits: 2) }.filter { $0.count == 3 }
                .map { String($0[2]) }.filter { $0.contains(" id=") }
        }
        let replayed = requests(s.contents("replay.log")), decoded = requests(s.contents("decoded.log"))
        #expect(!decoded.isEmpty)
        #expect(replayed == decoded, "\(s.contents("replay.log"))")
    }

    /// The client leg of the chain capture (nbdsh, then qemu-nbd 7.2 in front of nbdkit's
    /// nozero filter) replayed into a fresh chain of the same kind: qemu-nbd's trace shows
    /// the recorded requests, and nbdkit's log what qemu-nbd made of them in the recording.
    @Test func chainCaptureReplaysIntoAChain() throws {
        try Peers.require("qemu-nbd")
        let s = try Scratch()
        let up = try s.nbdkit(["--filter=nozero", "memory", "1M", "zeromode=plugin", "fastzeromode=slow"])
        let sock = s.path("qemu.sock")
        let trace = s.path("qemu-nbd.trace")
        try s.start("qemu-nbd", ["-k", sock, "--trace", "nbd_co_receive_request_decode_type,file=\(trace)", "-f", "raw", unixURI(up)], name: "qemu-nbd")
        try s.waitFor(sock)
        let (r, report) = try replay(s, [Self.capture("fast-zero-chain", "session-client.nbdt")], upstream: unixURI(sock), ["--allow-writes"])
        #expect(r.status == 0, "\(r.output)\n\(report)")
        let dir = repoRoot.appendingPathComponent("Captures/fast-zero-chain").path
        let recordedTrace = try String(contentsOfFile: dir + "/qemu-nbd-trace.log", encoding: .utf8)
        #expect(!qemuDecodeTypeCounts(recordedTrace).isEmpty)
        #expect(qemuDecodeTypeCounts(s.contents("qemu-nbd.trace")) == qemuDecodeTypeCounts(recordedTrace))
        let recordedLog = try String(contentsOfFile: dir + "/nbdkit.log", encoding: .utf8)
        #expect(requestCounts(s.contents("nbdkit.log")) == requestCounts(recordedLog), "\(s.contents("nbdkit.log"))")
    }

    /// `--timing scale=N` never sends a request before N times its recorded gap after the
    /// one before it: each gap in the replayed log (send times) is at least that. A lower
    /// bound the scheduler guarantees, not a measure of speed.
    @Test func scaledTimingKeepsTheRecordedGaps() throws {
        let s = try Scratch()
        try replayAndDecode(s, "nbdsh-all-simple", ["--timing", "scale=3"])
        /// Microseconds of the day of each request line (`2026-12-02 01:06:14.429550 ... id=N ... ...`).
        func sendTimes(_ log: String) -> [Int64] {
            log.split(separator: "\n").filter { $0.contains(" id=") && $0.hasSuffix(" ...") }.map { line in
                let t = line.split(separator: " ")[1].split(separator: ":")
                let sec = t[2].split(separator: ".")
                return ((Int64(t[0])! * 60 + Int64(t[1])!) * 60 + Int64(sec[0])!) * 1_000_000 + Int64(sec[1])!
            }
        }
        let recorded = sendTimes(s.contents("decoded.log")), replayed = sendTimes(s.contents("replay.log"))
        try #require(recorded.count == replayed.count && recorded.count > 2, "\(s.contents("replay.log"))")
        for i in 1..<recorded.count {
            let want = 3 * (recorded[i] - recorded[i - 1]), got = replayed[i] - replayed[i - 1]
            // 200 us of slack: the pace is kept on the monotonic clock, the log's times are read
            // from the wall clock a little later, after the request is framed.
            #expect(got + 200 >= want, "request \(i + 1): \(got) us after the one before, recorded gap x3 is \(want) us")
        }
    }

    /// Requests in flight at most, per connection, in an nbdkit-format log: a request is in
    /// flight from its `Action id=N ... ...` line to its `...Action id=N return=` line.
    static func maxInFlight(_ log: String) -> [Int: Int] {
        var open: [Int: Set<String>] = [:], most: [Int: Int] = [:]
        for line in log.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count > 4, f[2].hasPrefix("connection="), let c = Int(f[2].dropFirst(11)), f[4].hasPrefix("id=") else { continue }
            if f[3].hasPrefix("...") {
                open[c, default: []].remove(String(f[4]))
            } else if line.hasSuffix(" ...") {
                open[c, default: []].insert(String(f[4]))
                most[c] = max(most[c] ?? 0, open[c]!.count)
            }
        }
        return most
    }

    /// nbdcopy's four pipelined connections: the replay keeps each connection's queue depth
    /// within the recorded one (and does pipeline), and its statistics count what it sent.
    @Test func queueDepthStaysWithinTheRecordedOne() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "512M"])
        let (r, report) = try replay(s, [Self.capture("nbdcopy-multiconn")], upstream: unixURI(sock),
                                     ["--allow-writes", "--log", s.path("replay.log"), "--stats", s.path("stats.json"), "--stats-format", "json"])
        #expect(r.status == 0, "\(r.output)\n\(report)")
        let expected = try String(contentsOfFile: repoRoot.appendingPathComponent("Captures/nbdcopy-multiconn/expected.log").path, encoding: .utf8)
        let recorded = Self.maxInFlight(expected), replayed = Self.maxInFlight(s.contents("replay.log"))
        #expect(recorded.count == 4 && recorded.values.contains { $0 > 1 }, "\(recorded)")
        #expect(Set(replayed.keys) == Set(recorded.keys))
        for (c, n) in replayed { #expect(n <= recorded[c]!, "connection \(c): \(n) in flight, recorded \(recorded[c]!)") }
        #expect(replayed.values.contains { $0 > 1 }, "\(replayed)")
        // The statistics of the replay against those of the recording (`decode`'s, which
        // other tests hold against nbdkit's own log), NBD_CMD_DISC included in both.
        _ = try s.run(nbdtapBinary, ["decode", Self.capture("nbdcopy-multiconn"), "--log", "/dev/null", "--stats", s.path("recorded.json"), "--stats-format", "json"])
        func requests(_ file: String) throws -> Int? {
            let j = try #require(try JSONSerialization.jsonObject(with: Data(s.contents(file).utf8)) as? [String: Any], "\(s.contents(file))")
            return ((j["total"] as? [String: Any]) ?? j)["requests"] as? Int
        }
        #expect(try requests("stats.json") != nil)
        #expect(try requests("stats.json") == requests("recorded.json"))
    }

    /// A server that stops answering: the connection is given up after --reply-timeout and
    /// reported; SIGINT ends a replay with the report of what was replayed. Exit 1 both.
    @Test func hungServerAndInterruptEndInAReport() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["--filter=delay", "memory", "1M", "wdelay=60"])
        var (r, report) = try replay(s, [Self.capture("nbdsh-all-simple")], upstream: unixURI(sock), ["--allow-writes", "--reply-timeout", "1"])
        #expect(r.status == 1, "\(r.output)")
        #expect(report.contains("no answer from the upstream for 1 s (--reply-timeout)"), "\(report)")
        #expect(report.contains("not sent:"), "\(report)")

        let sock2 = try s.nbdkit(["--filter=delay", "memory", "1M", "wdelay=60"], name: "slow")
        let p = try s.start(nbdtapBinary, ["replay", Self.capture("nbdsh-all-simple"), "--upstream", unixURI(sock2), "--allow-writes",
                                           "--report", s.path("interrupted.txt")], name: "replay")
        // Interrupted once the first WRITE has reached the server (and hangs there).
        try waitUntil("the first write at the server") { s.contents("slow.log").contains("Write id=1") }
        kill(p.processIdentifier, SIGINT)
        try waitForExit(p)
        #expect(p.terminationStatus == 1, "\(s.output(of: "replay"))")
        report = s.contents("interrupted.txt")
        #expect(report.contains("interrupted"), "\(report)")
        #expect(report.contains("conn=1 id=1 WRITE"), "\(report)")
    }

    /// A server that answers garbage (a fake peer: no real server sends a bad reply magic):
    /// the connection is given up with the decoder's reason, the replay ends with a report.
    @Test func malformedRepliesEndTheConnectionWithAReason() throws {
        let s = try Scratch()
        let sock = s.path("fake.sock")
        try s.start("/usr/bin/python3", ["-c", """
            import socket, struct
            l = socket.socket(socket.AF_UNIX); l.bind("\(sock)"); l.listen(1)
            c, _ = l.accept()
            # Oldstyle: transmission starts at once, 1 MiB, flags HAS_FLAGS|SEND_FLUSH|SEND_TRIM|SEND_WRITE_ZEROES.
            c.sendall(b"NBDMAGIC" + struct.pack(">QQI", 0x00420281861253, 1 << 20, 0x65) + b"\\0" * 124)
            c.recv(28)
            c.sendall(b"\\xde\\xad\\xbe\\xef" * 8)
            c.recv(1 << 20)
            """], name: "fake")
        try s.waitFor(sock)
        let (r, report) = try replay(s, [Self.capture("nbdsh-all-simple")], upstream: unixURI(sock), ["--allow-writes"])
        #expect(r.status == 1, "\(r.output)")
        #expect(report.contains("the upstream's replies could not be decoded"), "\(report)")
        #expect(report.contains("not sent:"), "\(report)")
    }
}
