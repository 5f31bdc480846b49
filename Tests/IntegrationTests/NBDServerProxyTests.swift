import Foundation
import NBDTestSupport
import NBDProtocol
import Testing

/// nbd-server 3.24 upstream, over TCP: the reference implementation, with simple replies
/// only (it refuses structured replies), and its binary transaction log as ground truth.
@Suite(.enabled(if: Peers.enabled("nbd-server", "nbdsh")), .serialized)
struct NBDServerProxyTests {
    @Test func writeReadFlushTrimZero() throws {
        let s = try Scratch()
        let disk = s.path("disk.img")
        try s.run("truncate", ["-s", "1M", disk])
        let port = freePort()
        let config = nbdServerConfig(port: port, disk: disk, log: s.path("transaction.log"))
        try config.write(toFile: s.path("nbd-server.cfg"), atomically: true, encoding: .utf8)
        // With -d nbd-server serves one connection in the foreground and exits after it,
        // so readiness is read from /proc/net/tcp rather than probed with a connection.
        let server = try s.start("nbd-server", ["-C", s.path("nbd-server.cfg"), "-d"])
        try waitUntil("nbd-server to listen on \(port)") { tcpListening(port) }
        let proxy = try s.proxy(upstream: .tcp(host: "127.0.0.1", port: port))
        let r = try s.nbdsh(proxy.uri("export1"), """
            h.connect_uri(os.environ["uri"])
            assert not h.get_structured_replies_negotiated()
            pat = b"nbd-server 3.24\\n" * 256
            h.pwrite(pat, 0)
            h.pwrite(pat, 4096, nbd.CMD_FLAG_FUA)
            assert h.pread(8192, 0) == pat + pat
            h.flush()
            h.trim(65536, 65536)
            h.zero(65536, 131072)
            assert h.pread(65536, 131072) == bytes(65536)
            h.pwrite(b"\\xa5" * 65536, 262144)
            h.flush()
            assert h.pread(65536, 262144) == b"\\xa5" * 65536
            h.set_strict_mode(0)
            try:
                h.pread(4096, 1 << 20)
            except nbd.Error as e:
                print("past end:", e.errno)
            h.shutdown()
            print("done")
            """)
        #expect(r.status == 0 && r.output.contains("done"), "\(r.output)")
        try waitUntil("the session ends") { proxy.server.activeConnections == 0 }
        proxy.stop()
        // nbd-server -d exits after its one client, its transaction log complete.
        try waitForExit(server)
        #expect(server.terminationStatus == 0, "\(s.output(of: "nbd-server"))")

        // Written data is on nbd-server's disk.
        let image = try Data(contentsOf: URL(fileURLWithPath: disk))
        #expect(image[0..<16] == Data("nbd-server 3.24\n".utf8))
        #expect(image[262144..<327680] == Data(repeating: 0xa5, count: 65536))

        let log = proxy.log
        // The one violation is the client's read past the end, which nbd-server refuses.
        #expect(log.split(separator: "\n").filter { $0.contains(" Violation ") }.map { $0.split(separator: " ")[4...6].joined(separator: " ") }
                == ["from=client code=beyond_export_size fatal=0"], "\(log)")
        #expect(log.contains("...Option opt=STRUCTURED_REPLY reply=ERR_UNSUP"), "\(log)")
        let truth = nbdServerTransactionLog(try Data(contentsOf: URL(fileURLWithPath: s.path("transaction.log"))))
        let ours = requestCounts(log)
        #expect(ours == ["Write fua=0": 2, "Write fua=1": 1, "Read": 4, "Flush": 2, "Trim fua=0": 1, "Zero trim=1 fua=0 fast=0": 1], "\(ours)")
        #expect(tracedCounts(truth.requests) == ours, "\(truth.requests)")
        #expect(truth.requests.filter { $0.type == 2 }.count == 1)
        // One error, the read past the end, in both.
        #expect(truth.errors == [22: 1])
        #expect(replyCounts(log) == ["Write return=0": 3, "Read return=0": 3, "Read return=-1 error=EINVAL": 1, "Flush return=0": 2,
                                     "Trim return=0": 1, "Zero return=0": 1])
    }
}

/// Whether a socket listens on 127.0.0.1:port, read from /proc/net/tcp (state 0A).
func tcpListening(_ port: Int) -> Bool {
    let want = String(format: "0100007F:%04X", port)
    let table = readProcFile("/proc/net/tcp")
    return table.split(separator: "\n").contains { line in
        let f = line.split(separator: " ")
        return f.count > 3 && f[1] == want && f[3] == "0A"
    }
}
