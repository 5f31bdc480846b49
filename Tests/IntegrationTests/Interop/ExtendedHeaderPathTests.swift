import Foundation
import NBDTestSupport
import Testing

/// The extended-header paths the matrix's clients do not take, against qemu-nbd 10:
/// lengths over 4 GiB, BLOCK_STATUS_EXT over a 16 GiB export, a BLOCK_STATUS payload
/// (NBD_FLAG_BLOCK_STATUS_PAYLOAD), an extended error chunk, NBD_REP_ERR_EXT_HEADER_REQD,
/// and nbdtap's own extended error replies to qemu-io 10.
@Suite(.enabled(if: Peers.enabledWithQemu10("nbdinfo")))
struct ExtendedHeaderPathTests {
    static let client = repoRoot.appendingPathComponent("Tests/IntegrationTests/Tools/ext_client.py").path

    func qemuNBD10(_ s: Scratch, size: String) throws -> String {
        try Peers.requireQemu10()
        try s.run("truncate", ["-s", size, s.path("disk.raw")])
        let sock = s.path("up.sock")
        try s.start(Peers.qemu10("qemu-nbd"), ["--persistent", "-f", "raw", "-k", sock, "--trace", "nbd_receive_request",
                                             "--trace", "nbd_co_receive_request_decode_type", s.path("disk.raw")], name: "qemu-nbd")
        try s.waitFor(sock)
        return sock
    }

    @Test func sixtyFourBitRequestsBlockStatusPayloadAndErrors() throws {
        let s = try Scratch()
        let sock = try qemuNBD10(s, size: "16G")
        let px = s.path("px.sock")
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--listen", "nbd+unix:///?socket=\(px)",
                                         "--log", s.path("px.log"), "--stats", s.path("stats.json"), "--stats-format", "json", "--quiet",
                                         "--run", "/usr/bin/python3 \(Self.client) \(px)"])
        #expect(r.status == 0 && r.output.contains("done"), "\(r.output)")
        // What qemu-nbd 10 answered, as the client read it.
        #expect(r.output.contains("structured_reply 0x8000000a"))  // NBD_REP_ERR_EXT_HEADER_REQD
        #expect(r.output.contains("export 17179869184 0x1ced"))
        #expect(r.output.contains("zero_6g ok"))
        #expect(r.output.contains("trim_past_end error 22"))      // EINVAL in an extended error chunk
        #expect(r.output.contains("block_status_ext 0 [(5368709120, 3), (4096, 0), (11811155968, 3)]"))
        #expect(r.output.contains("block_status_payload (1073741824, 3)"))
        let log = s.contents("px.log")
        #expect(log.contains("...Option opt=STRUCTURED_REPLY reply=ERR_EXT_HEADER_REQD"))
        // 64-bit lengths print in full; a BLOCK_STATUS payload's effect length is the count.
        #expect(log.contains("Zero id=2 offset=0x180000000 count=0x180000000 trim=0 fua=0 fast=0 ..."))
        #expect(log.contains("Trim id=3 offset=0x300000000 count=0x140000000 fua=0 ..."))
        #expect(log.contains("...Trim id=3 return=-1 error=EINVAL"))
        #expect(log.contains("Extents id=4 offset=0x0 count=0x400000000 req_one=0 ..."))
        #expect(log.contains(#"...Extents id=4 extents=(0x0 0x140000000 "hole,zero" 0x140000000 0x1000 "" 0x140001000 0x2bffff000 "hole,zero") return=0"#))
        #expect(log.contains("Extents id=5 offset=0x100000000 count=0x200000000 req_one=1 ..."))
        #expect(log.contains(#"...Extents id=5 extents=(0x100000000 0x40000000 "hole,zero") return=0"#))
        // The only violation is the client's trim past the end, which qemu-nbd refused too.
        let violations = log.split(separator: "\n").filter { $0.contains(" Violation ") }
        #expect(violations.count == 1 && violations[0].contains("code=beyond_export_size"), "\(violations)")
        #expect(!log.contains("Compliance"))  // this client sets PAYLOAD_LEN on its WRITE
        // qemu-nbd's own record of the same requests: 64-bit lengths and flags.
        let trace = s.output(of: "qemu-nbd")
        for line in ["magic = 0x21e41c71, .flags = 0x2, .type = 0x6, from = 6442450944, len = 6442450944",
                     "magic = 0x21e41c71, .flags = 0x0, .type = 0x7, from = 0, len = 17179869184",
                     "magic = 0x21e41c71, .flags = 0x28, .type = 0x7, from = 4294967296, len = 12",
                     "magic = 0x21e41c71, .flags = 0x20, .type = 0x1, from = 5368709120, len = 4096"] {
            #expect(trace.contains(line), "\(line)")
        }
        #expect(qemuDecodeTypeCounts(trace) == actionCounts(log))
        // The statistics count bytes by effect length: 6 GiB of zeroes, 16 + 8 GiB of block status.
        let stats = s.contents("stats.json")
        #expect(stats.contains(#""WRITE_ZEROES":{"requests":1,"bytes":6442450944"#), "\(stats)")
        #expect(stats.contains(#""BLOCK_STATUS":{"requests":2,"bytes":25769803776"#), "\(stats)")
    }

    /// Bytes nbdtap writes itself use the form negotiated with that side: under extended
    /// headers its ENOTSUP for a fast zero (`--zeromode emulate`) is an extended error
    /// chunk and its success for an emulated zero an extended NONE chunk; qemu-io 10 reads
    /// both (a fast zero fails, the zero reads back as zeroes) and qemu-nbd 10 receives WRITEs.
    @Test func ownRepliesUseExtendedChunks() throws {
        let s = try Scratch()
        let sock = try qemuNBD10(s, size: "16M")
        let px = s.path("px.sock")
        let io = Peers.qemu10("qemu-io")
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--listen", "nbd+unix:///?socket=\(px)",
                                         "--log", s.path("px.log"), "--quiet", "--zeromode", "emulate",
                                         "--run", "\(io) -t writeback -f raw 'nbd+unix:///?socket=\(px)' -c 'write -P 0x55 0 1M' -c 'write -z -n 0 64k' "
                                            + "-c 'write -z 64k 64k' -c 'read -P 0 64k 64k' -c 'read -P 0x55 128k 64k'"])
        let log = s.contents("px.log")
        #expect(r.output.contains("write failed: Operation not supported"), "\(r.output)")
        #expect(!r.output.contains("read failed") && !r.output.contains("Pattern verification"), "\(r.output)")
        #expect(log.contains("extended=1"))
        #expect(log.contains("answered=NBD_CMD_WRITE_ZEROES error=ENOTSUP"), "\(log)")
        #expect(log.contains("zero_as_writes=1"))
        #expect(!log.contains(" Violation "), "\(log)")
        let counts = qemuDecodeTypeCounts(s.output(of: "qemu-nbd"))
        #expect(counts["Zero"] == nil && counts["Write"] == 2, "\(counts)")
    }

    /// `--emulate pre-extended-headers` in front of qemu-nbd 10 answers as qemu-nbd 7.2 does,
    /// checked with the raw-socket probe of the profile fixtures against both.
    @Test func preExtendedHeadersProfileLooksLikeQemuNBD72() throws {
        try Peers.require("qemu-nbd")
        let s = try Scratch()
        let probe = repoRoot.appendingPathComponent("Tests/NBDEmulationTests/Fixtures/probe.py").path
        try s.run("truncate", ["-s", "1M", s.path("disk.raw")])
        let old = freePort(), new = freePort(), viaTap = freePort()
        try s.start("qemu-nbd", ["--persistent", "-f", "raw", "-b", "127.0.0.1", "-p", String(old), s.path("disk.raw")], name: "q7")
        try s.start(Peers.qemu10("qemu-nbd"), ["--persistent", "-f", "raw", "-b", "127.0.0.1", "-p", String(new), s.path("disk.raw")], name: "q10")
        try s.waitForPort(old)
        try s.waitForPort(new)
        try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd://127.0.0.1:\(new)", "--listen", "nbd://127.0.0.1:\(viaTap)", "--quiet",
                                   "--emulate", "pre-extended-headers"], name: "tap")
        try s.waitForPort(viaTap)
        let p7 = try s.run("/usr/bin/python3", [probe, "127.0.0.1", String(old), ""])
        let p10 = try s.run("/usr/bin/python3", [probe, "127.0.0.1", String(new), ""])
        let tap = try s.run("/usr/bin/python3", [probe, "127.0.0.1", String(viaTap), ""])
        #expect(p10.output.contains(#""EXTENDED_HEADERS": "ACK""#), "\(p10.output)")
        #expect(p7.output.contains(#""EXTENDED_HEADERS": "ERR_UNSUP""#), "\(p7.output)")
        #expect(tap.output == p7.output, "through nbdtap: \(tap.output)\nqemu-nbd 7.2: \(p7.output)")
    }
}
