import Foundation

/// The clients of the interop matrix. Each runs as nbdtap's `--run` command against
/// `$CLIENT_URI` (the proxy's socket with the server's export name) and checks its own
/// data: what it wrote reads back identical, through the proxy.
enum InteropClient: String, CaseIterable, CustomStringConvertible, Sendable {
    case qemuImg7 = "qemu-img-7.2"
    case qemuImg10 = "qemu-img-10"
    case qemuIO10 = "qemu-io-10"
    case nbdcopy
    case nbdsh
    case nbdinfo
    case fio

    var description: String { rawValue }

    /// The tools it needs (qemu 10's are checked apart).
    var tools: [String] {
        switch self {
        case .qemuImg7: return ["qemu-img", "qemu-io"]
        case .qemuImg10, .qemuIO10: return ["qemu-img", "qemu-io"]
        case .nbdcopy: return ["nbdcopy", "qemu-img", "qemu-io"]
        case .nbdsh: return ["nbdsh"]
        case .nbdinfo: return ["nbdinfo"]
        case .fio: return ["fio"]
        }
    }

    var needsQemu10: Bool { self == .qemuImg10 || self == .qemuIO10 }

    /// The qemu-io commands of the qemu-io client: every request qemu-io can make over
    /// NBD (write, FUA write, write zeroes with and without unmap, discard, aio writes with
    /// two in flight, flush, block status through map), then every range read back with
    /// the pattern it must hold.
    static let qemuIOCommands = [
        "write -P 0x55 0 64k", "write -f -P 0x56 64k 64k", "write -z 128k 64k", "write -z -u 1M 1M",
        "discard 2M 64k", "aio_write -P 0x77 4M 8k", "aio_write -P 0x78 5M 8k", "aio_flush",
        "read -P 0x55 0 64k", "read -P 0x56 64k 64k", "read -P 0 128k 64k", "read -P 0 1M 1M",
        "read -P 0x77 4M 8k", "read -P 0x78 5M 8k", "map", "flush",
    ]

    /// nbdsh: every command the server advertises, each checked.
    static let nbdshScript = """
        import os
        h.add_meta_context("base:allocation")
        h.connect_uri(os.environ["CLIENT_URI"])
        pat = b"\\xa5" * 65536
        h.pwrite(pat, 0)
        h.pwrite(pat, 65536, nbd.CMD_FLAG_FUA if h.can_fua() else 0)
        assert h.pread(131072, 0) == pat + pat
        if h.can_zero():
            h.zero(65536, 131072)
            h.zero(65536, 196608, nbd.CMD_FLAG_NO_HOLE)
            if h.can_fast_zero():
                try:
                    h.zero(65536, 262144, nbd.CMD_FLAG_FAST_ZERO)
                    print("fast zero ok")
                except nbd.Error as e:
                    print("fast zero", e.errno)
                    assert e.errno == "ENOTSUP", e
            assert h.pread(131072, 131072) == bytes(131072)
        if h.can_trim():
            h.trim(65536, 1 << 20)
        if h.can_flush():
            h.flush()
        if h.can_cache():
            h.cache(65536, 0)
        if h.can_meta_context("base:allocation"):
            seen = []
            h.block_status(4 << 20, 0, lambda ctx, off, entries, err: seen.append(sum(entries[0::2])) or 0)
            assert seen and seen[0] > 0, seen
        if h.get_structured_replies_negotiated():
            buf = h.pread_structured(65536, 0, lambda *a: 0, nbd.CMD_FLAG_DF if h.can_df() else 0)
            assert buf == pat
        print("structured", h.get_structured_replies_negotiated())
        h.shutdown()
        print("done")
        """

    /// `nbdinfo --map`, or the line nbdinfo prints when the server has no base:allocation
    /// (nbd-server 3.24): the same shell for the proxied and the direct run.
    static func nbdinfoMap(uri: String, out: String) -> String {
        "{ nbdinfo --map \(uri) > \(out) 2> \(out).err || { grep -q 'does not support metadata context' \(out).err && echo no-map > \(out); }; }"
    }

    /// The shell command run through the proxy; `dir` holds the source images made by
    /// `prepare`.
    /// `oneConnection`: nbdcopy uses one connection per copy (nbd-server's transaction log
    /// keeps only the last connection's requests).
    func command(dir: String, oneConnection: Bool = false) -> String {
        let q7 = "/usr/bin"
        let q10 = Peers.qemu10Bin
        switch self {
        case .qemuImg7, .qemuImg10:
            let q = self == .qemuImg7 ? q7 : q10
            return "set -e; \(q)/qemu-img convert -n -f qcow2 -O raw \(dir)/source.qcow2 \"$CLIENT_URI\"; "
                + "\(q)/qemu-img compare -f qcow2 -F raw \(dir)/source.qcow2 \"$CLIENT_URI\""
        case .qemuIO10:
            return "\(q10)/qemu-io -f raw \"$CLIENT_URI\" " + Self.qemuIOCommands.map { "-c '\($0)'" }.joined(separator: " ")
        case .nbdcopy:
            let c = oneConnection ? " -C 1" : ""
            return "set -e; nbdcopy\(c) \(dir)/source.raw \"$CLIENT_URI\"; nbdcopy\(c) \"$CLIENT_URI\" \(dir)/copy.raw; "
                + "cmp \(dir)/source.raw \(dir)/copy.raw && echo identical"
        case .nbdsh:
            return "nbdsh -c \"exec(open('\(dir)/client.py').read())\""
        case .nbdinfo:
            return "set -e; nbdinfo --json \"$CLIENT_URI\" > \(dir)/info.json; " + Self.nbdinfoMap(uri: "\"$CLIENT_URI\"", out: "\(dir)/map.txt") + "; echo mapped"
        case .fio:
            return "fio --name=verify --ioengine=nbd --uri=\"$CLIENT_URI\" --rw=randwrite --bs=4k --size=2M --iodepth=8 "
                + "--verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=1 --group_reporting"
        }
    }

    /// Source images and scripts, made with Debian 12's qemu 7.2 (independent of nbdtap):
    /// a 16 MiB qcow2 half data, half holes, and its raw copy.
    func prepare(_ s: Scratch) throws {
        switch self {
        case .qemuImg7, .qemuImg10, .nbdcopy:
            try s.run("qemu-img", ["create", "-q", "-f", "qcow2", s.path("source.qcow2"), "16M"])
            try s.run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x11 0 1M", "-c", "write -P 0x22 3M 512k",
                                  "-c", "write -P 0x33 8M 2M", "-c", "write -z 12M 1M", "-c", "write -P 0x44 15M 64k",
                                  s.path("source.qcow2")])
            if self == .nbdcopy {
                try s.run("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", s.path("source.qcow2"), s.path("source.raw")])
            }
        case .nbdsh:
            try Self.nbdshScript.write(toFile: s.path("client.py"), atomically: true, encoding: .utf8)
        case .qemuIO10, .nbdinfo, .fio:
            break
        }
    }

    /// Whether the client's output says it succeeded and saw its own data.
    func succeeded(_ output: String, status: Int32) -> Bool {
        guard status == 0 else { return false }
        switch self {
        case .qemuImg7, .qemuImg10: return output.contains("Images are identical")
        case .qemuIO10:
            return !output.contains("failed") && !output.contains("Pattern verification")
                && output.components(separatedBy: "read ").count - 1 >= 6
        case .nbdcopy: return output.contains("identical")
        case .nbdsh: return output.contains("done")
        case .nbdinfo: return output.contains("mapped")
        case .fio: return !output.contains("verify: bad") && output.contains("verify: (groupid=0")
        }
    }
}
