import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Replies nbdtap writes itself (emulation refusing a request) are subject to the client's
/// backpressure: a client that sends refused requests and never reads the answers is
/// stopped being read, as a server would stop, instead of nbdtap queueing the answers.
@Suite(.enabled(if: Peers.enabled("nbdkit")))
struct OwnReplyBackpressureTests {
    func rssKiB(_ pid: Int32) -> Int {
        for line in readProcFile("/proc/\(pid)/status").split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }

    /// The process's RSS `count` times, a quarter of a second apart.
    func rssSamples(_ pid: Int32, count: Int) -> [Int] {
        (0..<count).map { _ in
            usleep(250_000)
            return rssKiB(pid)
        }
    }

    /// A python client that negotiates (GO) on the Unix socket `px`, then runs `send` (which
    /// writes to `s`) in a thread while the main thread never reads, printing "sent all" if
    /// `send` finishes or why it stopped, and holds the connection.
    static func flood(_ px: String, _ send: String) -> String {
        let body = send.split(separator: "\n").map { "        " + $0 }.joined(separator: "\n")
        return """
            import socket, struct, threading, time
            s = socket.socket(socket.AF_UNIX); s.connect("\(px)")
            assert len(s.recv(18, socket.MSG_WAITALL)) == 18
            s.sendall(struct.pack(">I", 3) + struct.pack(">QII", 0x49484156454F5054, 7, 6) + struct.pack(">IH", 0, 0))
            while True:
                h = s.recv(20, socket.MSG_WAITALL); n = struct.unpack(">I", h[16:20])[0]
                s.recv(n, socket.MSG_WAITALL) if n else b""
                if struct.unpack(">I", h[12:16])[0] == 1: break
            def send():
                try:
            \(body)
                    print("sent all", flush=True)
                except OSError as e:
                    print("send stopped:", e, flush=True)
            threading.Thread(target=send, daemon=True).start()
            time.sleep(600)
            """
    }

    @Test func refusedRequestsWithoutReadingTheAnswersDoNotGrowMemory() throws {
        let s = try Scratch()
        let up = try s.nbdkit(["memory", "1M"], logFilter: false)
        let px = s.path("px.sock")
        let proxy = try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--listen", "nbd+unix:///?socket=\(px)",
                                               "--read-only", "--quiet"], name: "px")
        try s.waitFor(px)
        let before = rssKiB(proxy.processIdentifier)
        // 2 million zero-length WRITEs (all answered EPERM by nbdtap under --read-only),
        // sent by a thread while the main thread never reads; it stops once the proxy
        // stops reading (the send blocks) or all are sent, then holds the connection.
        let client = try s.start("/usr/bin/python3", ["-c", Self.flood(px, """
            batch = b"".join(struct.pack(">IHHQQI", 0x25609513, 0, 1, i, 0, 0) for i in range(10000))
            for _ in range(200): s.sendall(batch)
            """)], name: "client")
        // 20 s: the kernel's socket buffers (a few MB, some 200,000 answers) fill in the first
        // seconds; after that, without backpressure, nbdtap's own queue grows by some 6 MB
        // a second here (measured before the fix: +17 MB in the 2.5 s after the buffers
        // filled).
        let samples = rssSamples(proxy.processIdentifier, count: 80)
        kill(client.processIdentifier, SIGKILL)
        kill(proxy.processIdentifier, SIGTERM)
        try waitForExit(proxy)
        // 2 million answers queued would be 2 million buffers: hundreds of MB. Bounded, the
        // proxy holds a socket buffer's worth.
        let grown = (samples.max() ?? 0) - before
        #expect(grown < 32 * 1024, "RSS grew by \(grown) KiB: \(samples)")
        #expect(!s.output(of: "client").contains("sent all"), "\(s.output(of: "client"))")
    }

    /// A delay holds the client's stream, and the hold keeps at most 64 MiB: a client
    /// sending 1 MiB WRITEs without pause through `--delay write=1h` is stopped being read
    /// there, instead of nbdtap holding every WRITE it sends.
    @Test func aDelayHoldsABoundedPartOfTheClientsStream() throws {
        let s = try Scratch()
        let up = try s.nbdkit(["memory", "1G"], logFilter: false)
        let px = s.path("px.sock")
        let proxy = try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--listen", "nbd+unix:///?socket=\(px)",
                                               "--delay", "write=3600s", "--quiet"], name: "px")
        try s.waitFor(px)
        let before = rssKiB(proxy.processIdentifier)
        let client = try s.start("/usr/bin/python3", ["-c", Self.flood(px, """
            data = bytes(1 << 20)
            for i in range(512): s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, i, i << 20, 1 << 20) + data)
            """)], name: "client")
        let samples = rssSamples(proxy.processIdentifier, count: 32)
        kill(client.processIdentifier, SIGKILL)
        kill(proxy.processIdentifier, SIGKILL)
        // 512 MiB sent; the hold keeps 64 MiB and one read more.
        let grown = (samples.max() ?? 0) - before
        #expect(grown < 100 * 1024, "RSS grew by \(grown) KiB: \(samples)")
        #expect(!s.output(of: "client").contains("sent all"), "\(s.output(of: "client"))")
    }
}
