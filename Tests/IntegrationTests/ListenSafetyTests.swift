import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What nbdtap does with the address it is asked to listen on: never takes over a live
/// Unix socket (another server's or another nbdtap's), removes on exit only the socket it
/// made, refuses to relay to itself, reports a bind failure as a run-time error (exit 1,
/// no usage text), and creates its log, pcap and statistics files 0600.
@Suite(.enabled(if: Peers.enabled("nbdkit", "nbdinfo")), .serialized)
struct ListenSafetyTests {
    func proxy(_ s: Scratch, upstream: String, listen: String, _ extra: [String] = []) throws -> Scratch.Result {
        try s.run(nbdtapBinary, ["proxy", "--upstream", upstream, "--listen", listen] + extra, timeout: 20)
    }

    @Test func liveUnixSocketIsNotTakenOver() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "1M"], logFilter: false)
        let r = try proxy(s, upstream: "nbd+unix:///?socket=\(s.path("other.sock"))", listen: "nbd+unix:///?socket=\(sock)")
        #expect(r.status == 1, "\(r.output)")
        #expect(r.output.contains("cannot listen on nbd+unix:///?socket=\(sock): bind \(sock): Address already in use"), "\(r.output)")
        #expect(!r.output.contains("Usage:"), "\(r.output)")
        // nbdkit still serves on its socket.
        let info = try s.run("nbdinfo", ["--size", "nbd+unix:///?socket=\(sock)"])
        #expect(info.output.contains("1048576"), "\(info.output)")
    }

    @Test func staleSocketIsReplacedAndOnlyOwnSocketRemoved() throws {
        let s = try Scratch()
        let up = try s.nbdkit(["memory", "1M"], logFilter: false)
        let path = s.path("px.sock")
        // A stale socket file (nobody accepts on it) is replaced, as by any restarted server.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        close(stale)
        let p = try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--listen", "nbd+unix:///?socket=\(path)", "--quiet"], name: "px")
        try waitUntil("nbdtap to listen") { s.output(of: "px").contains("listening on") }
        #expect(try s.run("nbdinfo", ["--size", "nbd+unix:///?socket=\(path)"]).output.contains("1048576"))
        // Another server takes the path over; on SIGTERM nbdtap must leave it alone.
        unlink(path)
        try s.start("nbdkit", ["-f", "--exit-with-parent", "-U", path, "memory", "2M"], name: "replacement")
        try s.waitFor(path)
        kill(p.processIdentifier, SIGTERM)
        try waitForExit(p)
        #expect(FileManager.default.fileExists(atPath: path))
        #expect(try s.run("nbdinfo", ["--size", "nbd+unix:///?socket=\(path)"]).output.contains("2097152"))
        // Its own socket it removes.
        let p2 = try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--listen", "nbd+unix:///?socket=\(s.path("own.sock"))", "--quiet"], name: "px2")
        try waitUntil("nbdtap to listen") { s.output(of: "px2").contains("listening on") }
        kill(p2.processIdentifier, SIGTERM)
        try waitForExit(p2)
        #expect(!FileManager.default.fileExists(atPath: s.path("own.sock")))
    }

    @Test func relayToItselfIsRefused() throws {
        let s = try Scratch()
        let port = freePort()
        for (up, listen) in [("nbd://127.0.0.1:\(port)", "nbd://localhost:\(port)"),
                             ("nbd+unix:///?socket=\(s.path("a.sock"))", "nbd+unix:///?socket=\(s.dir)/./x/../a.sock")] {
            let r = try proxy(s, upstream: up, listen: listen)
            #expect(r.status == 1 && r.output.contains("is the upstream itself"), "\(r.output)")
        }
    }

    @Test func outputFilesAre0600() throws {
        let s = try Scratch()
        let up = try s.nbdkit(["memory", "1M"], logFilter: false)
        umask(0o022)
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--quiet", "--log", s.path("l.log"),
                                         "--pcap", s.path("p.pcap"), "--stats", s.path("s.txt"), "--run", "nbdinfo --size $uri"])
        #expect(r.status == 0, "\(r.output)")
        for f in ["l.log", "p.pcap", "s.txt"] {
            let mode = (try FileManager.default.attributesOfItem(atPath: s.path(f))[.posixPermissions] as? Int) ?? -1
            #expect(mode == 0o600, "\(f): \(String(mode, radix: 8))")
        }
    }
}
