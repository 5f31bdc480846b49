import Foundation
import NBDTestSupport
import NBDProtocol
import Testing

/// Real clients through the proxy to nbdkit, with nbdkit's log filter as ground truth.
@Suite(.enabled(if: Peers.enabled("nbdkit", "nbdsh")), .serialized)
struct NBDKitProxyTests {
    static let everyCommand = """
        h.add_meta_context("base:allocation")
        h.connect_uri(os.environ["uri"])
        import hashlib
        data = bytes(range(256)) * 64
        h.pwrite(data, 0)
        h.pwrite(data, 16384, nbd.CMD_FLAG_FUA)
        assert h.pread(16384, 0) == data
        h.pread_structured(4096, 0, lambda buf, off, st, err: 0, nbd.CMD_FLAG_DF)
        h.flush()
        h.trim(65536, 1 << 20)
        h.zero(65536, 2 << 20)
        h.zero(65536, 3 << 20, nbd.CMD_FLAG_NO_HOLE)
        h.zero(65536, 4 << 20, nbd.CMD_FLAG_FAST_ZERO)
        h.zero(65536, 5 << 20, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE)
        h.cache(65536, 0)
        h.block_status(8 << 20, 0, lambda ctx, off, ents, err: 0)
        h.block_status(8 << 20, 0, lambda ctx, off, ents, err: 0, nbd.CMD_FLAG_REQ_ONE)
        print("sha", hashlib.sha256(h.pread(32768, 0)).hexdigest(), hashlib.sha256(data + data).hexdigest())
        h.shutdown()
        """

    @Test func everyCommandMatchesNBDKitLog() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "8M"])
        let proxy = try s.proxy(upstream: .unix(path: sock))
        let r = try s.nbdsh(proxy.uri(), Self.everyCommand)
        #expect(r.status == 0, "\(r.output)")
        proxy.stop()
        let truth = try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)
        let ours = proxy.log
        #expect(requestCounts(ours) == requestCounts(truth))
        #expect(replyCounts(ours) == replyCounts(truth))
        #expect(requestCounts(ours)["Zero trim=1 fua=0 fast=1"] == 1)
        #expect(requestCounts(ours)["Zero trim=0 fua=0 fast=1"] == 1)
        // Data written through the proxy reads back identical (both digests printed equal).
        let sha = r.output.split(separator: "\n").first { $0.hasPrefix("sha ") }?.split(separator: " ")
        #expect(sha?.count == 3 && sha?[1] == sha?[2])
        let stats = proxy.server.stats.snapshot().0
        #expect(stats[command: "WRITE_ZEROES"]?.fast1 == 2)
        #expect(stats[command: "READ"]?.flagCount("DF") == 1)
    }

    @Test func qemuImgConvertAndCompare() throws {
        try Peers.require("qemu-img")
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "16M"])
        let proxy = try s.proxy(upstream: .unix(path: sock))
        // A half-sparse qcow2: 1 MiB of data at every even MiB, holes between.
        let raw = s.path("src.raw")
        try s.run("qemu-img", ["create", "-f", "raw", raw, "16M"])
        let py = "f=open('\(raw)','r+b')\nimport random\nr=random.Random(1)\nfor i in range(0,16,2):\n f.seek(i<<20); f.write(bytes(r.getrandbits(8) for _ in range(1<<20)))\n"
        try s.run("python3", ["-c", py])
        try s.run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, s.path("src.qcow2")])
        let convert = try s.run("qemu-img", ["convert", "-n", "-f", "qcow2", "-O", "raw", s.path("src.qcow2"), proxy.uri()])
        #expect(convert.status == 0, "\(convert.output)")
        let compare = try s.run("qemu-img", ["compare", "-f", "qcow2", "-F", "raw", s.path("src.qcow2"), proxy.uri()])
        #expect(compare.status == 0, "\(compare.output)")
        #expect(compare.output.contains("Images are identical"))
        proxy.stop()
        let truth = try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)
        #expect(requestCounts(proxy.log) == requestCounts(truth))
        #expect(requestCounts(proxy.log)["Write fua=0", default: 0] >= 8)
    }

    @Test func qemuIO() throws {
        try Peers.require("qemu-io")
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "4M"])
        let proxy = try s.proxy(upstream: .unix(path: sock))
        let r = try s.run("qemu-io", ["-f", "raw", "-c", "write -P 0x5a 0 64k", "-c", "write -z 64k 64k", "-c", "read -P 0x5a 0 64k",
                                      "-c", "read -P 0 64k 64k", "-c", "discard 128k 64k", "-c", "flush", proxy.uri()])
        #expect(r.status == 0 && !r.output.contains("Pattern verification failed"), "\(r.output)")
        proxy.stop()
        let truth = try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)
        #expect(requestCounts(proxy.log) == requestCounts(truth))
        #expect(replyCounts(proxy.log) == replyCounts(truth))
    }

    @Test func nbdcopyWithFourConnections() throws {
        try Peers.require("nbdcopy")
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "64M"])
        let proxy = try s.proxy(upstream: .unix(path: sock))
        let src = s.path("src.img")
        let py = "f=open('\(src)','wb')\nf.truncate(64<<20)\nimport random\nr=random.Random(2)\nfor i in range(0,64,4):\n f.seek(i<<20); f.write(bytes(r.getrandbits(8) for _ in range(1<<20)))\n"
        try s.run("python3", ["-c", py])
        let copy = try s.run("nbdcopy", ["--connections=4", "--threads=4", "--request-size=1048576", "--flush", src, proxy.uri()])
        #expect(copy.status == 0, "\(copy.output)")
        let back = try s.run("nbdcopy", [proxy.uri(), s.path("back.img")])
        #expect(back.status == 0, "\(back.output)")
        #expect(FileManager.default.contentsEqual(atPath: src, andPath: s.path("back.img")))
        proxy.stop()
        let truth = try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)
        #expect(requestCounts(proxy.log) == requestCounts(truth))
        #expect(replyCounts(proxy.log) == replyCounts(truth))
        #expect(proxy.server.stats.snapshot().0.connections >= 5)
    }

    @Test func nbdinfoListMapJSON() throws {
        try Peers.require("nbdinfo")
        let s = try Scratch()
        let sock = try s.nbdkit(["--filter=exportname", "data", "@0x10000 ( 0x55 )*4096 @0x80000 ( 0xaa )*65536", "size=1M",
                                 "exportname=disk1", "exportname=disk2", "exportname-list=explicit"])
        let proxy = try s.proxy(upstream: .unix(path: sock))
        let list = try s.run("nbdinfo", ["--list", proxy.uri()])
        #expect(list.status == 0 && list.output.contains("disk1") && list.output.contains("disk2"), "\(list.output)")
        let direct = try s.run("nbdinfo", ["--map", "nbd+unix:///disk1?socket=\(sock)"])
        let map = try s.run("nbdinfo", ["--map", proxy.uri("disk1")])
        #expect(map.status == 0 && map.output == direct.output, "\(map.output)")
        let json = try s.run("nbdinfo", ["--json", proxy.uri("disk2")])
        #expect(json.status == 0 && json.output.contains("\"export-size\": 1048576"), "\(json.output)")
        proxy.stop()
        let log = proxy.log
        #expect(log.contains("Option opt=LIST"))
        #expect(log.contains("reply=SERVER export=disk1"))
        #expect(log.contains("Option opt=SET_META_CONTEXT export=disk1 queries=(base:allocation)"))
        #expect(log.contains("Option opt=ABORT"))  // its ACK may race the client's close
        #expect(!log.contains("Violation"))
    }

    /// The README's fast-zero command and sed pipeline, through the built binary in captive mode.
    @Test func seedPipelineThroughRun() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "1M"])
        let log = s.path("px.log")
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--log", log, "--quiet",
                                         "--stats", s.path("stats.json"), "--stats-format", "json",
                                         "--run", #"nbdsh -u $uri -c "h.zero(512, 0, nbd.CMD_FLAG_FAST_ZERO)""#])
        #expect(r.status == 0, "\(r.output)")
        let counted = try s.run("/bin/sh", ["-c", #"sed -n '/Zero.*\.\./ s/.*\(fast=.\).*/\1/p' "# + log + " | sort | uniq -c"])
        #expect(counted.output.trimmingCharacters(in: .whitespacesAndNewlines) == "1 fast=1")
        let stats = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.path("stats.json")))) as? [String: Any]
        let zero = (stats?["commands"] as? [String: Any])?["WRITE_ZEROES"] as? [String: Any]
        #expect((zero?["fast"] as? [String: Any])?["1"] as? Int == 1)
        // The exit status of CMD is nbdtap's.
        let failing = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--quiet", "--run", "exit 7"])
        #expect(failing.status == 7)
    }
}
