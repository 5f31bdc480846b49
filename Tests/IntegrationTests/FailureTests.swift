import Foundation
import NBDTestSupport
import NBDProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What the proxy does when a peer fails or misbehaves, and how it stops: real peers
/// (nbdkit, nbdsh, nbdinfo) killed mid-request, a hand-written server that breaks the
/// protocol (no real one does), raw garbage from a client, a thousand short connections,
/// and the `nbdtap proxy` binary stopped by SIGTERM and SIGINT with a READ reply or a
/// WRITE payload under way.
@Suite(.enabled(if: Peers.enabled("nbdkit", "nbdsh", "nbdinfo", "python3")), .serialized)
struct FailureTests {
    @Test func upstreamUnreachable() throws {
        let s = try Scratch()
        let unix = try s.proxy(upstream: .unix(path: s.path("nobody.sock")))
        let tcp = try s.proxy(upstream: .tcp(host: "127.0.0.1", port: freePort()), name: "proxytcp")
        for proxy in [unix, tcp] {
            // The client is greeted and told why: each option gets NBD_REP_ERR_SHUTDOWN with
            // the reason; nbdinfo fails with ESHUTDOWN.
            guard case .unix(let path) = proxy.endpoint else { Issue.record("proxy not on a Unix socket"); continue }
            let raw = try s.run("python3", ["-c", """
                import socket, struct
                s = socket.socket(socket.AF_UNIX); s.connect("\(path)"); s.settimeout(30)
                greeting = s.recv(18)
                print("greeting", greeting[:16] == b"NBDMAGICIHAVEOPT")
                s.sendall(struct.pack(">I", 3) + struct.pack(">QII", 0x49484156454F5054, 7, 6) + struct.pack(">IH", 0, 0))
                head = b""
                while len(head) < 20: head += s.recv(20 - len(head))
                magic, opt, rtype, length = struct.unpack(">QIII", head)
                msg = b""
                while len(msg) < length: msg += s.recv(length - len(msg))
                print("reply", opt, hex(rtype), msg.decode())
                """], timeout: 60)
            #expect(raw.output.contains("greeting True"), "\(raw.output)")
            #expect(raw.output.contains("reply 7 0x80000007 nbdtap: cannot reach the upstream "), "\(raw.output)")
            let info = try s.run("nbdinfo", [proxy.uri()], timeout: 60)
            #expect(info.status != 0 && info.output.contains("transport endpoint shutdown"), "\(info.output)")  // ESHUTDOWN, libnbd's name for NBD_REP_ERR_SHUTDOWN
            proxy.stop()
            let log = proxy.log
            #expect(log.split(separator: "\n").filter { $0.contains(" Upstream error=") }.count == 2, "\(log)")
            #expect(!log.contains("Connect export="))
        }
    }

    /// The reason reaches standard error and qemu, not only the log.
    @Test(.enabled(if: Peers.enabledWithQemu10())) func upstreamUnreachableReasonReachesTheUser() throws {
        let s = try Scratch()
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(s.path("nobody.sock"))",
                                         "--run", "\(Peers.qemu10("qemu-img")) info \"$uri\""], timeout: 60)
        #expect(r.output.contains("server reported: nbdtap: cannot reach the upstream nbd+unix:///?socket=\(s.path("nobody.sock")): connect"), "\(r.output)")
        #expect(r.output.contains("nbdtap: connection 1 closed: 0 requests, 0 errors, 0 B from the client, 0 B from the server; cannot reach the upstream"), "\(r.output)")
    }

    @Test func upstreamDiesMidTransfer() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["--filter=delay", "memory", "1M", "delay-read=5"])
        let nbdkit = s.processes.last!
        let proxy = try s.proxy(upstream: .unix(path: sock))
        let client = try s.startNbdsh(proxy.uri(), """
            h.pwrite(b"x" * 4096, 0)
            h.pread(4096, 0)
            print("read ok")
            """)
        try waitUntil("the read reaches the proxy") { proxy.log.contains(" Read id=2 ") }
        kill(nbdkit.processIdentifier, SIGKILL)
        try waitForExit(client)
        let out = s.output(of: "client")
        #expect(client.terminationStatus != 0 && !out.contains("read ok"), "\(out)")
        try waitUntil("the abandoned read is logged") { proxy.log.contains("...Read id=2 return=-1 error=ENOTCONN") }
        try waitUntil("the session ends") { proxy.server.activeConnections == 0 }

        // A new upstream on the same socket path: the proxy serves the next client.
        unlink(sock)
        try s.start("nbdkit", ["-f", "--exit-with-parent", "-U", sock, "memory", "1M"], name: "nbdkit2")
        try s.waitFor(sock)
        let again = try s.nbdsh(proxy.uri(), """
            h.connect_uri(os.environ["uri"])
            h.pwrite(b"y" * 4096, 0)
            assert h.pread(4096, 0) == b"y" * 4096
            h.shutdown()
            print("second ok")
            """)
        #expect(again.status == 0 && again.output.contains("second ok"), "\(again.output)")
        proxy.stop()
        let log = proxy.log
        #expect(log.contains("connection=2 ...Read id=2 return=0"), "\(log)")
        #expect(log.components(separatedBy: " Disconnect transactions=").count == 3)
    }

    @Test func clientDiesMidRequest() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["--filter=delay", "memory", "1M", "delay-read=3"])
        let proxy = try s.proxy(upstream: .unix(path: sock))
        let client = try s.startNbdsh(proxy.uri(), """
            h.pread(4096, 0)
            print("read ok")
            """)
        try waitUntil("the read reaches nbdkit") { s.contents("nbdkit.log").contains(" Read id=1 ") }
        kill(client.processIdentifier, SIGKILL)
        try waitForExit(client)
        // The upstream connection is closed: nbdkit ends the connection, and the proxy
        // forgets the session.
        try waitUntil("nbdkit sees the disconnect") { s.contents("nbdkit.log").contains(" Disconnect ") }
        try waitUntil("the session ends") { proxy.server.activeConnections == 0 }
        proxy.stop()
        let log = proxy.log
        #expect(log.contains("...Read id=1 return=-1 error=ENOTCONN"), "\(log)")
        // nbdkit logs the unanswered read before its Disconnect line, and counts it there.
        do {
            let lines = log.split(separator: "\n")
            let abandoned = lines.firstIndex { $0.contains("...Read id=1 return=-1 error=ENOTCONN") } ?? lines.count
            let disconnect = lines.firstIndex { $0.contains(" Disconnect ") } ?? -1
            #expect(abandoned < disconnect, "\(log)")
            #expect(log.contains(" Disconnect transactions=1"), "\(log)")
        }
    }

    /// The server sends a READ's reply header and half its data, then closes: the client
    /// failed, so the log and the statistics must not call the READ a success.

    /// bad_server.py behind an in-process proxy; `call` runs once against `export` through
    /// it, its nbd.Error printed as "failed: ..."; returns the client's output and the
    /// proxy's log once the session ended.
    func throughBadServer(_ s: Scratch, export: String, call: String) throws -> (output: String, log: String, proxy: RunningProxy) {
        let sock = s.path("bad.sock")
        try s.start("python3", [toolPath("bad_server.py"), sock], name: "bad_server")
        try s.waitFor(sock)
        let proxy = try s.proxy(upstream: .unix(path: sock))
        let r = try s.nbdsh(proxy.uri(export), """
            h.connect_uri(os.environ["uri"])
            try:
                \(call)
                print("ok")
            except nbd.Error as e:
                print("failed:", e)
            """)
        try waitUntil("the session ends") { proxy.server.activeConnections == 0 }
        proxy.stop()
        return (r.output, proxy.log, proxy)
    }

    @Test func readCutOffByTheServerIsNotASuccess() throws {
        let s = try Scratch()
        let (output, log, proxy) = try throughBadServer(s, export: "halfread", call: "h.pread(65536, 0)")
        #expect(output.contains("failed:"), "\(output)")
        #expect(log.contains("...Read id=1 return=-1 error=ENOTCONN"), "\(log)")
        #expect(!log.contains("...Read id=1 return=0"), "\(log)")
        #expect(log.contains("code=truncated"), "\(log)")
        let read = try #require(proxy.server.stats.snapshot().0[command: "READ"])
        #expect(read.abandoned == 1 && read.errors == ["ENOTCONN": 1], "\(read)")
    }

    /// The upstream closes in the middle of a large WRITE: nbdtap cuts the client off, and
    /// the half-sent WRITE is not logged as the client breaking the protocol.
    @Test func upstreamDyingMidWriteIsNotTheClientsViolation() throws {
        let s = try Scratch()
        let (output, log, _) = try throughBadServer(s, export: "closeonwrite", call: "h.pwrite(b\"w\" * (512 << 10), 0)")
        #expect(output.contains("failed:"), "\(output)")
        #expect(log.contains("...Write id=1 return=-1 error=ENOTCONN"), "\(log)")
        #expect(!log.contains("Violation from=client"), "\(log)")
    }

    @Test func serverBreaksProtocol() throws {
        let s = try Scratch()
        let sock = s.path("bad.sock")
        try s.start("python3", [toolPath("bad_server.py"), sock], name: "bad_server")
        try s.waitFor(sock)
        let proxy = try s.proxy(upstream: .unix(path: sock))
        // One client, two connections: the one to export "bad" gets a reply with a bad
        // magic, the one to "good" keeps working before and after.
        let r = try s.nbdsh(proxy.uri(), """
            good = nbd.NBD()
            good.connect_uri("\(proxy.uri("good"))")
            assert good.pread(4096, 0) == bytes(4096)
            bad = nbd.NBD()
            bad.connect_uri("\(proxy.uri("bad"))")
            try:
                bad.pread(4096, 0)
                print("bad read ok")
            except nbd.Error as e:
                print("bad read failed:", e)
            assert good.pread(65536, 4096) == bytes(65536)
            good.flush()
            good.shutdown()
            print("good still works")
            """)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("bad read failed") && r.output.contains("good still works"), "\(r.output)")
        try waitUntil("both sessions end") { proxy.server.activeConnections == 0 }
        proxy.stop()
        let log = proxy.log
        let badConnection = try #require(log.split(separator: "\n").first { $0.contains("Connect export=bad") }?
            .split(separator: " ").first { $0.hasPrefix("connection=") }, "\(log)")
        let lines = log.split(separator: "\n").filter { $0.contains(" \(badConnection) ") }
        #expect(lines.contains { $0.contains("Violation from=server code=bad_magic fatal=1") }, "\(log)")
        #expect(lines.contains { $0.contains("Close reason=\"server broke the protocol: ") }, "\(log)")
        #expect(lines.contains { $0.contains("...Read id=1 return=-1 error=ENOTCONN") }, "\(log)")
        // The good connection: no violation, every request answered.
        let good = log.split(separator: "\n").filter { !$0.contains(" \(badConnection) ") }.joined(separator: "\n")
        #expect(!good.contains("Violation") && !good.contains("ENOTCONN"), "\(good)")
        #expect(replyCounts(good) == ["Read return=0": 2, "Flush return=0": 1])
    }

    @Test func clientBreaksProtocol() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "1M"])
        let proxy = try s.proxy(upstream: .unix(path: sock))
        guard case .unix(let path) = proxy.endpoint else { Issue.record("proxy not on a Unix socket"); return }
        // A correct fixed-newstyle handshake (EXPORT_NAME, no zeroes), then 28 bytes of
        // garbage where a request header belongs.
        let r = try s.run("python3", ["-c", """
            import socket, struct
            s = socket.socket(socket.AF_UNIX); s.connect("\(path)"); s.settimeout(30)
            def exact(n):
                b = b""
                while len(b) < n:
                    p = s.recv(n - len(b))
                    assert p, "EOF during handshake"
                    b += p
                return b
            magic, ihaveopt, flags = struct.unpack(">QQH", exact(18))
            assert magic == 0x4e42444d41474943 and flags & 3 == 3
            s.sendall(struct.pack(">I", 3) + struct.pack(">QII", ihaveopt, 1, 0))
            size, eflags = struct.unpack(">QH", exact(10))
            print("size", size)
            s.sendall(bytes(range(0xe0, 0xfc)))
            try:
                rest = s.recv(100)
                print("eof" if rest == b"" else "got %d bytes" % len(rest))
            except ConnectionResetError:
                print("eof")
            """], timeout: 60)
        #expect(r.output.contains("size 1048576") && r.output.contains("eof"), "\(r.output)")
        try waitUntil("nbdkit sees the disconnect") { s.contents("nbdkit.log").contains(" Disconnect ") }
        let again = try s.run("nbdinfo", [proxy.uri()])
        #expect(again.status == 0, "\(again.output)")
        proxy.stop()
        let log = proxy.log
        #expect(log.contains("connection=1 Violation from=client code=bad_magic fatal=1"), "\(log)")
        #expect(log.contains("connection=1 Close reason=\"client broke the protocol: "), "\(log)")
        // The garbage never reached the server: its first connection saw no request.
        let first = s.contents("nbdkit.log").split(separator: "\n").filter { $0.contains(" connection=1 ") }.joined(separator: "\n")
        #expect(first.contains(" Disconnect ") && requestCounts(first).isEmpty, "\(first)")
    }

    /// A thousand connections through the `nbdtap proxy` binary, half closed before the
    /// greeting and half after it, leave its descriptor count where it was. The binary
    /// runs the same ProxyServer as the in-process proxy; counting its /proc/PID/fd keeps
    /// the count exact while other suites open files in this process.
    @Test func thousandConnectionsLeaveNoDescriptors() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "1M"], logFilter: false)
        let listen = s.path("tap.sock")
        let tap = try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--listen", "nbd+unix:///?socket=\(listen)",
                                             "--log", s.path("tap.log"), "--quiet"], name: "nbdtap")
        try s.waitFor(listen)
        let uri = "nbd+unix:///?socket=\(listen)"
        let warm = try s.run("nbdinfo", [uri])
        #expect(warm.status == 0, "\(warm.output)")
        let pid = tap.processIdentifier
        try waitUntil("the warm-up connection ends") { s.contents("tap.log").contains(" Disconnect ") }
        let before = openDescriptors(pid)
        let churn = try s.run("python3", ["-c", churnScript(listen)], timeout: 120)
        #expect(churn.status == 0 && churn.output.contains("done"), "\(churn.output)")
        try waitUntil("every connection is logged closed", timeout: 60) {
            s.contents("tap.log").components(separatedBy: " Disconnect ").count == 1002
        }
        try? waitUntil("the descriptors settle", timeout: 20) { openDescriptors(pid) == before }
        #expect(openDescriptors(pid) == before)
        let after = try s.run("nbdinfo", [uri])
        #expect(after.status == 0, "\(after.output)")
        kill(pid, SIGTERM)
        try waitForExit(tap)
        #expect(tap.terminationReason == .exit && tap.terminationStatus == 0)
        #expect(s.contents("tap.log").components(separatedBy: " Disconnect ").count == 1003)
    }

    /// The same thousand connections through the in-process proxy. Other suites open files
    /// in this process meanwhile, so rather than the total, this counts the descriptors
    /// that belong to the proxy's connections: sockets accepted on its listening path
    /// (/proc/net/unix names them by that path) and sockets connected to its TCP upstream
    /// (/proc/net/tcp), which must all be gone once the sessions end.
    @Test func thousandConnectionsInProcessCloseEverySocket() throws {
        let s = try Scratch()
        let port = freePort()
        try s.start("nbdkit", ["-f", "--exit-with-parent", "-i", "127.0.0.1", "-p", String(port), "memory", "1M"])
        try waitUntil("nbdkit to listen on \(port)") { tcpListening(port) }
        let proxy = try s.proxy(upstream: .tcp(host: "127.0.0.1", port: port))
        guard case .unix(let path) = proxy.endpoint else { Issue.record("proxy not on a Unix socket"); return }
        // The count does see a live connection: its accepted socket and its upstream one.
        let idle = try s.startNbdsh(proxy.uri(), "import time\ntime.sleep(120)\n", name: "idle")
        try waitUntil("an idle client's two sockets") { proxySockets(path: path, upstreamPort: port) == 2 }
        kill(idle.processIdentifier, SIGKILL)
        try waitForExit(idle)
        let churn = try s.run("python3", ["-c", churnScript(path)], timeout: 120)
        #expect(churn.status == 0 && churn.output.contains("done"), "\(churn.output)")
        try waitUntil("every session ends", timeout: 60) { proxy.server.activeConnections == 0 }
        try? waitUntil("the sockets close") { proxySockets(path: path, upstreamPort: port) == 0 }
        #expect(proxySockets(path: path, upstreamPort: port) == 0)
        #expect(proxy.server.stats.snapshot().0.connections == 1001)
        let after = try s.run("nbdinfo", [proxy.uri()])
        #expect(after.status == 0, "\(after.output)")
        proxy.stop()
    }

    /// SIGTERM with a delayed read in flight: the read completes and reaches the client
    /// before the proxy exits, the statistics are written, the exit status is 0.
    @Test func sigtermDrainsInFlightRequest() throws {
        let s = try Scratch()
        let (tap, client) = try startBinaryWithDelayedRead(s, extra: ["--stats", s.path("stats.json"), "--stats-format", "json"])
        kill(tap.processIdentifier, SIGTERM)
        try waitForExit(tap)
        try waitForExit(client)
        #expect(tap.terminationReason == .exit && tap.terminationStatus == 0, "\(s.output(of: "nbdtap"))")
        #expect(s.output(of: "client").contains("read ok"), "\(s.output(of: "client"))")
        let log = s.contents("tap.log")
        #expect(log.contains("connection=1 ...Read id=2 return=0"), "\(log)")
        #expect(log.contains("connection=1 Disconnect transactions=2"), "\(log)")
        let stats = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.path("stats.json")))) as? [String: Any]
        let read = (stats?["commands"] as? [String: Any])?["READ"] as? [String: Any]
        #expect(read?["requests"] as? Int == 1)
        #expect((read?["errors"] as? [String: Any])?.isEmpty == true)
    }

    /// SIGINT likewise, with the statistics table printed on standard error.
    @Test func sigintDrainsAndPrintsTable() throws {
        let s = try Scratch()
        let (tap, client) = try startBinaryWithDelayedRead(s, extra: [])
        kill(tap.processIdentifier, SIGINT)
        try waitForExit(tap)
        try waitForExit(client)
        let out = s.output(of: "nbdtap")
        #expect(tap.terminationReason == .exit && tap.terminationStatus == 0, "\(out)")
        #expect(s.output(of: "client").contains("read ok"), "\(s.output(of: "client"))")
        #expect(s.contents("tap.log").contains("connection=1 ...Read id=2 return=0"))
        #expect(out.contains("total (1 connection):"), "\(out)")
        let readRow = out.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("READ ") }
        #expect(readRow?.split(separator: " ").dropFirst().first == "1", "\(out)")
    }

    /// SIGTERM while a 16 MiB WRITE payload is half relayed: the proxy keeps reading the
    /// client until that request is whole, so both writes in flight complete. nbdkit runs
    /// one thread with a 1-second write delay, so while it works on the first write it
    /// reads nothing and the second one's payload backs up into the proxy and the client.
    /// The same in emulation mode (`--mask fast-zero`), where the relay edits messages and
    /// once dropped the half-sent payload and waited out the drain period.
    @Test(arguments: [[], ["--mask", "fast-zero"]])
    func sigtermFinishesWritePayload(_ emulation: [String]) throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["--threads=1", "--filter=delay", "memory", "64M", "delay-write=1"])
        let listen = s.path("tap.sock")
        let tap = try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--listen", "nbd+unix:///?socket=\(listen)",
                                             "--log", s.path("tap.log"), "--quiet"] + emulation, name: "nbdtap")
        try s.waitFor(listen)
        let client = try s.startNbdsh("nbd+unix:///?socket=\(listen)", """
            size = 16 << 20
            bufs = [nbd.Buffer.from_bytearray(bytearray([i + 1]) * size) for i in range(2)]
            cookies = [h.aio_pwrite(b, i * size) for i, b in enumerate(bufs)]
            while h.aio_in_flight() > 0:
                h.poll(-1)
            assert all(h.aio_command_completed(c) for c in cookies)
            print("writes ok")
            """)
        try waitUntil("both writes reach the proxy, the first one nbdkit") {
            s.contents("tap.log").contains(" Write id=2 ") && s.contents("nbdkit.log").contains(" Write id=1 ")
        }
        kill(tap.processIdentifier, SIGTERM)
        try waitForExit(tap)
        try waitForExit(client)
        #expect(tap.terminationReason == .exit && tap.terminationStatus == 0, "\(s.output(of: "nbdtap"))")
        #expect(s.output(of: "client").contains("writes ok"), "\(s.output(of: "client"))")
        let log = s.contents("tap.log")
        #expect(replyCounts(log) == ["Write return=0": 2], "\(log)")
        #expect(replyCounts(s.contents("nbdkit.log")) == ["Write return=0": 2])
        #expect(log.contains("Close reason=\"proxy shutting down\""), "\(log)")
        #expect(!log.contains("drain period"), "\(log)")
    }

    /// `nbdtap proxy` in front of nbdkit with a 2-second read delay, and an nbdsh whose
    /// read (request 2) is in flight when this returns. The read is 16 MiB: its reply
    /// header arrives long before its last byte, so draining must wait for the bytes,
    /// not just for the reply to start.
    func startBinaryWithDelayedRead(_ s: Scratch, extra: [String]) throws -> (Process, Process) {
        let sock = try s.nbdkit(["--filter=delay", "memory", "32M", "delay-read=2"])
        let listen = s.path("tap.sock")
        let tap = try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--listen", "nbd+unix:///?socket=\(listen)",
                                             "--log", s.path("tap.log")] + extra, name: "nbdtap")
        try s.waitFor(listen)
        let client = try s.startNbdsh("nbd+unix:///?socket=\(listen)", """
            data = bytes(range(256)) * 65536
            h.pwrite(data, 0)
            assert h.pread(len(data), 0) == data
            print("read ok")
            try:
                h.shutdown()
            except nbd.Error as e:
                print("shutdown:", e)
            """)
        try waitUntil("the read is in flight") { s.contents("tap.log").contains(" Read id=2 ") }
        return (tap, client)
    }
}

// MARK: Helpers shared by the failure, transparency and peer tests.

/// A Python client that opens 1,000 connections to the Unix socket `path`, closing half
/// at once and half after reading the 18-byte newstyle greeting.
func churnScript(_ path: String) -> String {
    """
    import socket
    for i in range(1000):
        s = socket.socket(socket.AF_UNIX)
        s.connect("\(path)")
        if i % 2:
            s.settimeout(30)
            g = b""
            while len(g) < 18:
                p = s.recv(18 - len(g))
                assert p, "EOF before the greeting on connection %d" % i
                g += p
            assert g[:8] == b"NBDMAGIC"
        s.close()
    print("done")
    """
}

/// Descriptors of this process that are proxy connections: sockets accepted on the
/// listening socket `path` (an accepted Unix socket carries its listener's path in
/// /proc/net/unix) and TCP sockets whose remote port is `upstreamPort`.
func proxySockets(path: String, upstreamPort: Int) -> Int {
    var inodes: Set<String> = []
    let unix = readProcFile("/proc/net/unix")
    for line in unix.split(separator: "\n").dropFirst() {
        let f = line.split(separator: " ")
        // Fields: Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 = listening.
        if f.count >= 8 && f[7] == path && f[3] != "00010000" { inodes.insert(String(f[6])) }
    }
    let remote = String(format: ":%04X", upstreamPort)
    let tcp = readProcFile("/proc/net/tcp")
    for line in tcp.split(separator: "\n").dropFirst() {
        let f = line.split(separator: " ")
        // Fields: sl local rem st tx:rx tr:when retrnsmt uid timeout inode.
        if f.count >= 10 && f[2].hasSuffix(remote) && f[9] != "0" { inodes.insert(String(f[9])) }
    }
    let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return fds.filter { fd in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)"),
              target.hasPrefix("socket:[") else { return false }
        return inodes.contains(String(target.dropFirst(8).dropLast()))
    }.count
}

/// A helper script in Tests/IntegrationTests/Tools.
func toolPath(_ name: String) -> String {
    repoRoot.appendingPathComponent("Tests/IntegrationTests/Tools/\(name)").path
}

/// Polls `condition` until it holds. The timeout only guards against a hang: no test
/// asserts on how long anything took.
func waitUntil(_ what: String, timeout: Double = 30, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while try !condition() {
        guard Date() < deadline else { throw HarnessError.timeout(what) }
        usleep(20_000)
    }
}

/// Waits for a process started with `Scratch.start` to exit (bounded as a hang guard).
func waitForExit(_ p: Process, timeout: Double = 60) throws {
    try waitUntil("\(p.executableURL?.lastPathComponent ?? "process") to exit", timeout: timeout) { !p.isRunning }
    p.waitUntilExit()
}

/// The whole of a /proc file. They report a size of 0, and Foundation's whole-file
/// readers can stop after the first read (a page of /proc/net/tcp, where a busy machine
/// lists hundreds of TIME_WAIT sockets), so this reads to EOF itself.
func readProcFile(_ path: String) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Entries of /proc/PID/fd: the process's open descriptors.
func openDescriptors(_ pid: Int32) -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
}

extension Scratch {
    /// Starts nbdsh in the background on `uri`; the script runs after `connect_uri` and
    /// its output goes to `name`.out.
    @discardableResult
    func startNbdsh(_ uri: String, _ script: String, name: String = "client") throws -> Process {
        let file = path("\(name).py")
        try ("h.connect_uri(\"\(uri)\")\n" + script).write(toFile: file, atomically: true, encoding: .utf8)
        return try start("nbdsh", ["-c", "exec(open('\(file)').read())"], name: name)
    }

    /// What a process started with `start(name:)` printed.
    func output(of name: String) -> String { contents("\(name).out") }

    func contents(_ file: String) -> String {
        (try? String(contentsOfFile: path(file), encoding: .utf8)) ?? ""
    }
}
