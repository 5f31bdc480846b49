import Foundation
import NBDTestSupport
@testable import NBDProxy
import Testing

/// `--pcap` on the kernel path: payloads spliced socket to socket are still recorded. With
/// payloads once, the client leg's copy is tee(2)d and spliced into the file, so tshark's
/// own reassembly of the client leg holds every block nbdcopy wrote and read, and the
/// upstream leg's packets carry lengths only; with a snapshot length, neither leg holds
/// them. The independent sources are nbdkit's log, tshark, and a Python reading of tshark's
/// stream dump; the proxy's count of spliced bytes shows which path moved them.
@Suite(.enabled(if: Peers.enabled("nbdkit", "nbdcopy", "python3", "tshark")), .serialized)
struct KernelPathPcapTests {
    /// Prints, for tshark's raw dump of one TCP stream on standard input, whether each
    /// 1 MiB block of the image at argv[1] is in the bytes sent to the server and in those
    /// sent to the client ("WR" per block, "-" where missing).
    static let findBlocks = """
        import sys
        img = open(sys.argv[1], 'rb').read()
        to_server, to_client = bytearray(), bytearray()
        for line in sys.stdin:
            h = line.strip()
            if not h or len(h) % 2 or any(c not in '0123456789abcdef' for c in h):
                continue
            (to_client if line.startswith('\\t') else to_server).extend(bytes.fromhex(h))
        blocks = [img[i:i + (1 << 20)] for i in range(0, len(img), 1 << 20)]
        print(' '.join(('W' if b in to_server else '-') + ('R' if b in to_client else '-') for b in blocks))
        """

    @Test(arguments: [false, true]) func recordsWhatTheKernelMoved(snaplen: Bool) throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "8M"])
        let src = s.path("src.img")
        #expect(try s.run("python3", ["-c", "import random; open('\(src)','wb').write(random.Random(9).randbytes(8 << 20))"]).status == 0)
        let pcap = s.path("px.pcap")
        let recorder = try PcapRecorder(path: pcap, snaplen: snaplen ? 128 : nil, payloadsOnce: !snaplen)
        let proxy = try s.proxy(upstream: .unix(path: sock), pcap: recorder)
        let copy = ["--request-size=1048576", "--connections=1"]
        #expect(try s.run("nbdcopy", copy + [src, proxy.uri()]).status == 0)
        #expect(try s.run("nbdcopy", copy + [proxy.uri(), s.path("back.img")]).status == 0)
        #expect(FileManager.default.contentsEqual(atPath: src, andPath: s.path("back.img")))
        #expect(proxy.server.bytesSpliced > 8 << 20, "\(proxy.server.bytesSpliced) bytes spliced")
        proxy.stop()

        let (_, records) = try PcapSnaplenTests.records(pcap)
        let recorded = records.reduce(0) { $0 + $1.caplen }, original = records.reduce(0) { $0 + $1.origlen }
        #expect(original > 32 << 20, "two legs, 8 MiB each way: \(original)")
        if snaplen {
            #expect(records.allSatisfy { $0.caplen <= 128 })
            #expect(recorded < 1 << 20, "\(recorded) bytes recorded")
        } else {
            #expect(recorded > 16 << 20 && recorded < 18 << 20, "payloads once: \(recorded) of \(original) bytes")
        }
        // tcp.stream 0 is the client leg, 1 the upstream leg of the first copy.
        let wholeOnClientLeg = Array(repeating: snaplen ? "--" : "W-", count: 8).joined(separator: " ")
        let noneOnUpstreamLeg = Array(repeating: "--", count: 8).joined(separator: " ")
        let readWholeOnClientLeg = Array(repeating: snaplen ? "--" : "-R", count: 8).joined(separator: " ")
        try Self.findBlocks.write(toFile: s.path("blocks.py"), atomically: true, encoding: .utf8)
        for (stream, want) in [(0, wholeOnClientLeg), (1, noneOnUpstreamLeg), (2, readWholeOnClientLeg), (3, noneOnUpstreamLeg)] {
            let r = try s.run("sh", ["-c", "tshark -r '\(pcap)' -q -z follow,tcp,raw,\(stream) 2>/dev/null | python3 '\(s.path("blocks.py"))' '\(src)'"])
            #expect(r.status == 0)
            #expect(r.output.trimmingCharacters(in: .whitespacesAndNewlines) == want, "stream \(stream)")
        }
        let expert = try s.run("tshark", ["-r", pcap, "-q", "-z", "expert,warn"])
        #expect(expert.status == 0)
        for trouble in ["Previous segment", "ACKed segment", "out-of-order", "retransmission", "Malformed"] {
            #expect(!expert.output.localizedCaseInsensitiveContains(trouble), "\(expert.output)")
        }
        // Both legs decode to what nbdkit served.
        let nbdkit = PcapSnaplenTests.nbdkitRequests(try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8))
        #expect(nbdkit["WRITE"] == 8 && nbdkit["READ"] == 8, "\(nbdkit)")
        let decoded = try s.run(nbdtapBinary, ["decode", pcap, "--stats", s.path("d.json"), "--stats-format", "json", "--log", s.path("d.log")])
        #expect(decoded.status == 0, "\(decoded.output)")
        #expect(try PcapSnaplenTests.statsRequests(s.path("d.json")).filter { $0.key != "DISC" } == nbdkit.mapValues { $0 * 2 })
        #expect(try !String(contentsOfFile: s.path("d.log"), encoding: .utf8).contains("Violation"))
    }

    /// Small requests at depth: qemu-img bench's 4 KiB writes and reads go through the
    /// direct loop's own reads and sends, which tell the legs what they relayed. tshark
    /// finds every request on the client leg (recorded whole) and nbdtap decode on both
    /// legs, as many as nbdkit's log has.
    @Test(.enabled(if: Peers.enabled("qemu-img"))) func recordsWhatTheDirectLoopRelayed() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "64M"])
        let pcap = s.path("px.pcap")
        let proxy = try s.proxy(upstream: .unix(path: sock), pcap: try PcapRecorder(path: pcap, payloadsOnce: true))
        for write in [true, false] {
            let r = try s.run("qemu-img", ["bench", "-f", "raw", "-c", "2000", "-d", "8", "-s", "4k", "-S", "4k"]
                              + (write ? ["-w", "--pattern=165"] : []) + [proxy.uri()])
            #expect(r.status == 0, "\(r.output)")
        }
        #expect(proxy.server.bytesRelayedDirectly > 2000 * 4096, "\(proxy.server.bytesRelayedDirectly) bytes relayed directly")
        proxy.stop()
        let nbdkit = PcapSnaplenTests.nbdkitRequests(try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8))
        #expect(nbdkit["WRITE"] == 2000 && nbdkit["READ"] == 2000, "\(nbdkit)")
        // NBD request types on the client legs (the stand-in 127.1.0.2 is nbdtap there).
        let t = try s.run("sh", ["-c", "tshark -r '\(pcap)' -Y 'nbd.magic == 0x25609513 && ip.dst == 127.1.0.2' -T fields -e nbd.type 2>/dev/null"])
        #expect(t.status == 0)
        let types = t.output.split(separator: "\n").flatMap { $0.split(separator: ",") }.compactMap { Int($0) }
        #expect(types.filter { $0 == 1 }.count == 2000 && types.filter { $0 == 0 }.count == 2000, "\(t.output.prefix(300))")
        let decoded = try s.run(nbdtapBinary, ["decode", pcap, "--stats", s.path("d.json"), "--stats-format", "json", "--log", s.path("d.log")])
        #expect(decoded.status == 0, "\(decoded.output)")
        let counts = try PcapSnaplenTests.statsRequests(s.path("d.json"))
        #expect(counts["WRITE"] == 4000 && counts["READ"] == 4000, "\(counts)")
        #expect(try !String(contentsOfFile: s.path("d.log"), encoding: .utf8).contains("Violation"))
        let expert = try s.run("tshark", ["-r", pcap, "-q", "-z", "expert,warn"])
        for trouble in ["Previous segment", "ACKed segment", "out-of-order", "retransmission", "Malformed"] {
            #expect(!expert.output.localizedCaseInsensitiveContains(trouble), "\(expert.output)")
        }
    }
}
