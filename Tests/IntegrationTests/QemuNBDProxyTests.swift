import Foundation
import NBDTestSupport
import NBDProtocol
import Testing

/// qemu-nbd upstream: a second server implementation, with the replies nbdkit 1.32 never
/// sends (OFFSET_HOLE chunks, a second meta context whose values are not flags), and its
/// own trace (`--trace 'nbd_*'`) as ground truth.
@Suite(.enabled(if: Peers.enabled("qemu-nbd", "qemu-img", "qemu-io", "nbdsh")), .serialized)
struct QemuNBDProxyTests {
    /// The same client as Captures/qemu-nbd-allocation-depth: both meta contexts, block
    /// status over the whole disk, REQ_ONE and the tail, reads over data, holes, a zero
    /// cluster and a hole with DF.
    static let client = """
        h.add_meta_context("base:allocation")
        h.add_meta_context("qemu:allocation-depth")
        h.connect_uri(os.environ["uri"])
        assert h.can_meta_context("base:allocation") and h.can_meta_context("qemu:allocation-depth")
        def extent(ctx, offset, entries, err):
            print("extents", ctx, offset, list(entries))
            return 0
        h.block_status(1 << 20, 0, extent)
        h.block_status(1 << 20, 0, extent, nbd.CMD_FLAG_REQ_ONE)
        h.block_status(256 << 10, 768 << 10, extent)
        def read(count, offset, flags=0):
            chunks = []
            def chunk(buf, off, status, err):
                chunks.append((off, len(buf), {1: "data", 2: "hole"}.get(status, status)))
                return 0
            buf = h.pread_structured(count, offset, chunk, flags)
            print("read", offset, count, chunks)
            return buf
        assert read(65536, 65536) == b"\\x33" * 65536
        assert read(65536, 786432) == bytes(65536)
        assert read(327680, 0) == b"\\x11" * 65536 + b"\\x33" * 65536 + bytes(131072) + b"\\x22" * 65536
        assert read(65536, 524288) == bytes(65536)
        assert read(131072, 655360, nbd.CMD_FLAG_DF) == bytes(131072)
        h.shutdown()
        print("done")
        """

    /// base.qcow2: 0x11 at 0–64K, 0x22 at 256K–320K; top.qcow2 (backing base): 0x33 at
    /// 64K–128K and a zero cluster at 512K–576K. Allocation depth is 2, 1 or 0.
    func makeImages(_ s: Scratch) throws -> String {
        try s.run("qemu-img", ["create", "-q", "-f", "qcow2", s.path("base.qcow2"), "1M"])
        try s.run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x11 0 64k", "-c", "write -P 0x22 256k 64k", s.path("base.qcow2")])
        try s.run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", s.path("base.qcow2"), "-F", "qcow2", s.path("top.qcow2"), "1M"])
        try s.run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x33 64k 64k", "-c", "write -z 512k 64k", s.path("top.qcow2")])
        return s.path("top.qcow2")
    }

    /// qemu-nbd on a Unix socket, tracing to `name`.out. Returns the socket path.
    func qemuNBD(_ s: Scratch, _ args: [String], name: String = "qemu-nbd") throws -> String {
        let sock = s.path("\(name).sock")
        try s.start("qemu-nbd", ["--persistent", "-k", sock, "--trace", "nbd_*"] + args, name: name)
        try s.waitFor(sock)
        return sock
    }

    @Test func allocationDepthAndHoles() throws {
        let s = try Scratch()
        let sock = try qemuNBD(s, ["-f", "qcow2", "-A", try makeImages(s)])
        // Two proxies in a chain, one logging text and one JSON, see the same session.
        let text = try s.proxy(upstream: .unix(path: sock))
        let json = try s.proxy(upstream: text.endpoint, name: "proxyjson", logFormat: .json)
        let r = try s.nbdsh(json.uri(), Self.client)
        #expect(r.status == 0 && r.output.contains("done"), "\(r.output)")
        #expect(r.output.contains("read 786432 65536 [(786432, 65536, 'hole')]"), "\(r.output)")
        json.stop()
        text.stop()

        let log = text.log
        #expect(log.contains("...Option opt=SET_META_CONTEXT reply=META_CONTEXT context_id=0 context=base:allocation"))
        #expect(log.contains("...Option opt=SET_META_CONTEXT reply=META_CONTEXT context_id=1 context=qemu:allocation-depth"))
        let extents = log.split(separator: "\n").filter { $0.contains("...Extents id=") }.map { String($0.split(separator: " ", maxSplits: 3)[3]) }
        #expect(extents == [
            #"...Extents id=1 extents=(0x0 0x20000 "" 0x20000 0x20000 "hole,zero" 0x40000 0x10000 "" 0x50000 0xb0000 "hole,zero") "#
                + "extents[qemu:allocation-depth]=(0x0 0x10000 0x2 0x10000 0x10000 0x1 0x20000 0x20000 0x0 0x40000 0x10000 0x2 "
                + "0x50000 0x30000 0x0 0x80000 0x10000 0x1 0x90000 0x70000 0x0) return=0",
            #"...Extents id=2 extents=(0x0 0x20000 "") extents[qemu:allocation-depth]=(0x0 0x10000 0x2) return=0"#,
            #"...Extents id=3 extents=(0xc0000 0x40000 "hole,zero") extents[qemu:allocation-depth]=(0xc0000 0x40000 0x0) return=0"#,
        ], "\(log)")

        // The JSON log carries both contexts' extents, and the hole bytes of reads.
        let events = json.log.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let replies = events.filter { $0["event"] as? String == "reply" }
        let status = replies.filter { $0["command"] as? String == "BLOCK_STATUS" }
        #expect(status.count == 3)
        let first = (status.first?["extents"] as? [[String: Any]]) ?? []
        #expect(first.map { $0["context"] as? String } == ["base:allocation", "qemu:allocation-depth"])
        #expect(first.map { $0["context_id"] as? Int } == [0, 1])
        let depths = (first.last?["extents"] as? [[Int]])?.map { $0[2] } ?? []
        #expect(depths == [2, 1, 0, 2, 0, 1, 0])
        #expect((first.first?["extents"] as? [[Int]])?.first == [0, 131072, 0])
        let reads = replies.filter { $0["command"] as? String == "READ" }
        #expect(reads.map { $0["hole_bytes"] as? Int ?? 0 } == [0, 65536, 131072, 65536, 0])
        #expect(reads.map { $0["chunks"] as? Int ?? 0 } == [1, 1, 4, 1, 1])

        // Request counts: the proxy's log against qemu-nbd's own trace and the client's
        // eight requests (and its DISC, which the log shows only as Disconnect).
        let trace = qemuTrace(s.output(of: "qemu-nbd"))
        #expect(requestCounts(log) == ["Extents req_one=0": 2, "Extents req_one=1": 1, "Read": 5])
        #expect(requestCounts(log) == tracedCounts(trace.requests), "\(trace.requests)")
        #expect(trace.requests.filter { $0.type == 2 }.count == 1 && trace.errors.isEmpty)
        #expect(log.contains("Disconnect transactions=8"))
    }

    @Test func qemuImgConvertAndCompare() throws {
        let s = try Scratch()
        // Source: 1 MiB of random data at every even MiB of 16, holes between.
        let raw = s.path("src.raw")
        try s.run("qemu-img", ["create", "-q", "-f", "raw", raw, "16M"])
        let py = "f=open('\(raw)','r+b')\nimport random\nr=random.Random(4)\nfor i in range(0,16,2):\n f.seek(i<<20); f.write(r.randbytes(1<<20))\n"
        try s.run("python3", ["-c", py])
        try s.run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, s.path("src.qcow2")])
        try s.run("qemu-img", ["create", "-q", "-f", "qcow2", s.path("target.qcow2"), "16M"])
        let sock = try qemuNBD(s, ["-f", "qcow2", "-e", "4", s.path("target.qcow2")])
        let proxy = try s.proxy(upstream: .unix(path: sock))
        let convert = try s.run("qemu-img", ["convert", "-n", "-f", "qcow2", "-O", "raw", s.path("src.qcow2"), proxy.uri()])
        #expect(convert.status == 0, "\(convert.output)")
        let compare = try s.run("qemu-img", ["compare", "-f", "qcow2", "-F", "raw", s.path("src.qcow2"), proxy.uri()])
        #expect(compare.status == 0 && compare.output.contains("Images are identical"), "\(compare.output)")
        try waitUntil("the sessions end") { proxy.server.activeConnections == 0 }
        proxy.stop()
        let log = proxy.log
        #expect(!log.contains("Violation") && !log.contains("ENOTCONN"), "\(log)")
        let trace = qemuTrace(s.output(of: "qemu-nbd"))
        let ours = requestCounts(log)
        #expect(ours == tracedCounts(trace.requests), "\(trace.requests)")
        #expect(ours["Write fua=0", default: 0] >= 8 && ours["Read", default: 0] >= 8, "\(ours)")
        #expect(trace.errors.isEmpty)
        // What qemu-nbd wrote is the source, read directly rather than through the proxy
        // (-U: qemu-nbd --persistent still holds the image's lock).
        let direct = try s.run("qemu-img", ["compare", "-U", "-f", "qcow2", "-F", "qcow2", s.path("src.qcow2"), s.path("target.qcow2")])
        #expect(direct.output.contains("Images are identical"), "\(direct.output)")
    }
}

/// Requests a server's trace recorded, labelled as nbdkit's log (and `requestCounts`)
/// label them; DISC is left out, as nbdkit's log shows it only as Disconnect.
func tracedCounts(_ requests: [TracedRequest]) -> [String: Int] {
    var counts: [String: Int] = [:]
    for r in requests {
        let flags = CommandFlags(rawValue: UInt16(r.flags))
        let fua = flags.contains(.fua) ? 1 : 0
        let label: String
        switch NBDCommand(rawValue: UInt16(r.type)) {
        case .read: label = "Read"
        case .write: label = "Write fua=\(fua)"
        case .disc: continue
        case .flush: label = "Flush"
        case .trim: label = "Trim fua=\(fua)"
        case .cache: label = "Cache"
        case .writeZeroes: label = "Zero trim=\(flags.contains(.noHole) ? 0 : 1) fua=\(fua) fast=\(flags.contains(.fastZero) ? 1 : 0)"
        case .blockStatus: label = "Extents req_one=\(flags.contains(.reqOne) ? 1 : 0)"
        case .resize, .unknown: label = "type \(r.type)"
        }
        counts[label, default: 0] += 1
    }
    return counts
}
