import Foundation
import NBDTestSupport
import Testing

/// `nbdtap proxy --pcap F --log L`, then `nbdtap decode F`: the decoded requests and
/// replies are those of L, exactly (ids, offsets, lengths, flags, outcomes), for both the
/// client leg and the upstream leg; tcpdump's tools read the file too.
@Suite(.enabled(if: Peers.enabled("nbdkit", "nbdsh", "tshark")))
struct PcapRoundTripTests {
    /// Request and reply lines of one connection without their timestamps.
    func messages(_ log: String, connection: Int) -> [String] {
        log.split(separator: "\n").map(String.init)
            .filter { $0.contains(" connection=\(connection) ") && ($0.hasSuffix(" ...") || $0.contains(" return=")) }
            .map { String($0.split(separator: " ", maxSplits: 3)[3]) }
    }

    @Test(arguments: ["unix", "tcp"])
    func decodeReproducesTheProxyLog(_ listen: String) throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "64M"])
        let port = freePort()
        let listenURI = listen == "unix" ? "nbd+unix:///?socket=\(s.path("px.sock"))" : "nbd://127.0.0.1:\(port)/"
        let script = """
            h.add_meta_context("base:allocation")
            h.connect_uri(os.environ["uri"])
            h.pwrite(b"a" * (4 << 20), 0, nbd.CMD_FLAG_FUA)
            h.pread(4 << 20, 0)
            h.zero(65536, 8 << 20, nbd.CMD_FLAG_FAST_ZERO)
            h.zero(65536, 9 << 20, nbd.CMD_FLAG_NO_HOLE)
            h.trim(65536, 10 << 20)
            h.flush()
            h.block_status(16 << 20, 0, lambda *a: 0)
            try:
                h.pread(512, 64 << 20)
            except nbd.Error:
                pass
            h.shutdown()
            """
        try script.write(toFile: s.path("client.py"), atomically: true, encoding: .utf8)
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--listen", listenURI, "--quiet",
                                         "--log", s.path("px.log"), "--pcap", s.path("px.pcap"),
                                         "--run", "nbdsh -c 'import os' -c \"exec(open('\(s.path("client.py"))').read())\""])
        #expect(r.status == 0, "\(r.output)")
        let proxyLog = try String(contentsOfFile: s.path("px.log"), encoding: .utf8)
        let decoded = try s.run(nbdtapBinary, ["decode", s.path("px.pcap"), "--log", s.path("decoded.log")])
        #expect(decoded.status == 0, "\(decoded.output)")
        let decodedLog = try String(contentsOfFile: s.path("decoded.log"), encoding: .utf8)
        let expected = messages(proxyLog, connection: 1)
        #expect(expected.count >= 16)
        #expect(expected.contains { $0.contains("Zero id=3 offset=0x800000 count=0x10000 trim=1 fua=0 fast=1 ...") })
        // Connection 1 of the capture is the client leg, 2 the upstream leg: the relay is
        // transparent, so both carry the proxy's requests and replies.
        #expect(messages(decodedLog, connection: 1) == expected)
        #expect(messages(decodedLog, connection: 2) == expected)
        // tshark reads the file: the 4 MiB write went through as TCP payload both ways.
        let t = try s.run("tshark", ["-r", s.path("px.pcap"), "-q", "-z", "conv,tcp"])
        #expect(t.status == 0 && t.output.contains("10809"), "\(t.output)")
    }
}
