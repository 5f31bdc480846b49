import Foundation
import NBDTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// STARTTLS end to end through the proxy, and live decoding from an interface.
@Suite(.enabled(if: Peers.enabled("nbdkit", "nbdsh")))
struct TLSAndLiveTests {
    /// The handshake up to STARTTLS is decoded; after the ACK the proxy relays the TLS
    /// records untouched, so the client and nbdkit complete TLS with each other.
    @Test func starttlsWorksThroughTheProxy() throws {
        let s = try Scratch()
        let psk = s.path("keys.psk")
        try "alice:4e4244544150207465737420505348206b6579206f6e6c792c206e6f74207365\n".write(toFile: psk, atomically: true, encoding: .utf8)
        chmod(psk, 0o600)
        let sock = try s.nbdkit(["--tls=require", "--tls-psk=\(psk)", "memory", "1M"])
        let proxy = try s.proxy(upstream: .unix(path: sock))
        let r = try s.nbdsh(proxy.uri(), """
            h.set_tls(nbd.TLS_REQUIRE)
            h.set_tls_psk_file("\(psk)")
            h.set_tls_username("alice")
            h.connect_uri(os.environ["uri"])
            h.pwrite(b"secret" * 100, 0)
            assert h.pread(600, 0) == b"secret" * 100
            print("tls", h.get_tls_negotiated())
            h.shutdown()
            """)
        #expect(r.status == 0 && r.output.contains("tls True"), "\(r.output)")
        proxy.stop()
        let log = proxy.log
        #expect(log.contains("Option opt=STARTTLS ..."))
        #expect(log.contains("...Option opt=STARTTLS reply=ACK"))
        #expect(log.contains("TLS starttls=1"))
        #expect(!log.contains("Violation"))
        // nbdkit saw the requests the wire hides.
        let truth = try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)
        #expect(requestCounts(truth)["Write fua=0"] == 1)
    }

    /// `nbdtap decode --interface lo` with a filter, stopped by SIGINT, prints the
    /// statistics of what crossed the interface meanwhile.
    @Test(.enabled(if: getuid() == 0)) func liveDecodeUntilSIGINT() throws {
        let s = try Scratch()
        let port = freePort()
        try s.start("nbdkit", ["-f", "--exit-with-parent", "-i", "127.0.0.1", "-p", String(port), "memory", "1M"])
        try s.waitForPort(port)
        let live = try s.start(nbdtapBinary, ["decode", "--interface", "lo", "--filter", "tcp port \(port)", "--port", String(port),
                                              "--log", s.path("live.log"), "--stats", s.path("stats.json"), "--stats-format", "json"], name: "live")
        usleep(1_500_000)  // libpcap attaches its filter
        let r = try s.nbdsh("nbd://127.0.0.1:\(port)/", """
            h.connect_uri(os.environ["uri"])
            h.zero(4096, 0, nbd.CMD_FLAG_FAST_ZERO)
            h.pwrite(b"x" * 4096, 0)
            h.shutdown()
            """)
        #expect(r.status == 0, "\(r.output)")
        usleep(1_000_000)
        kill(live.processIdentifier, SIGINT)
        live.waitUntilExit()
        #expect(live.terminationStatus == 0)
        let log = try String(contentsOfFile: s.path("live.log"), encoding: .utf8)
        #expect(log.contains("Zero id=1 offset=0x0 count=0x1000 trim=1 fua=0 fast=1 ..."), "\(log)")
        let stats = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.path("stats.json")))) as? [String: Any]
        #expect((((stats?["commands"] as? [String: Any])?["WRITE_ZEROES"] as? [String: Any])?["fast"] as? [String: Int])?["1"] == 1)
    }
}
