import Foundation
import Testing

/// The proxy's limits, each an option with a log line when it is hit: a client that never
/// finishes the handshake, a connection left idle, and one connection too many (told why
/// with NBD_REP_ERR_SHUTDOWN, the others served).
@Suite(.enabled(if: Peers.enabled("nbdkit", "nbdsh")))
struct LimitsTests {
    func start(_ s: Scratch, _ args: [String]) throws -> (Process, String) {
        let up = try s.nbdkit(["memory", "1M"], logFilter: false)
        let px = s.path("px.sock")
        let p = try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--listen", "nbd+unix:///?socket=\(px)",
                                           "--log", s.path("px.log")] + args, name: "px")
        try s.waitFor(px)
        return (p, px)
    }

    func stop(_ p: Process) throws {
        kill(p.processIdentifier, SIGTERM)
        try waitForExit(p)
    }

    @Test func handshakeAndIdleTimeouts() throws {
        let s = try Scratch()
        let (p, px) = try start(s, ["--handshake-timeout", "1", "--idle-timeout", "2"])
        let silent = try s.run("/usr/bin/python3", ["-c", """
            import socket
            a = socket.socket(socket.AF_UNIX); a.connect("\(px)"); a.settimeout(30)
            got = b""
            while True:
                part = a.recv(100)
                if not part: break
                got += part
            print("silent client closed after", len(got), "bytes")
            """])
        #expect(silent.output.contains("silent client closed after 18 bytes"), "\(silent.output)")
        let idle = try s.nbdsh("nbd+unix:///?socket=\(px)", """
            import time
            h.connect_uri(os.environ["uri"])
            h.pread(512, 0)
            time.sleep(4)
            try:
                h.pread(512, 0)
                print("read after idle ok")
            except nbd.Error as e:
                print("read after idle failed:", e.errno)
            """)
        #expect(idle.output.contains("read after idle failed: ENOTCONN"), "\(idle.output)")
        try stop(p)
        let log = s.contents("px.log")
        #expect(log.contains(#"Close reason="no NBD handshake within 1 s (--handshake-timeout)""#), "\(log)")
        #expect(log.contains(#"Close reason="idle for 2 s (--idle-timeout)""#), "\(log)")
        #expect(s.output(of: "px").contains("; idle for 2 s (--idle-timeout)"), "\(s.output(of: "px"))")
    }

    @Test func oneConnectionTooManyIsToldWhy() throws {
        let s = try Scratch()
        let (p, px) = try start(s, ["--max-connections", "1"])
        let r = try s.nbdsh("nbd+unix:///?socket=\(px)", """
            first = nbd.NBD()
            first.connect_uri(os.environ["uri"])
            second = nbd.NBD()
            try:
                second.connect_uri(os.environ["uri"])
                print("second connected")
            except nbd.Error as e:
                print("second refused:", e.errno)
            first.pwrite(b"x" * 512, 0)
            assert first.pread(512, 0) == b"x" * 512
            first.shutdown()
            print("first served")
            """)
        #expect(r.output.contains("second refused: ESHUTDOWN") && r.output.contains("first served"), "\(r.output)")
        try stop(p)
        let log = s.contents("px.log")
        #expect(log.contains(#"Refused reason="nbdtap: too many connections (--max-connections 1)""#), "\(log)")
    }
}
