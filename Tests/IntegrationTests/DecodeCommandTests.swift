import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `nbdtap decode` on broken and foreign input: a clear one-line error, the results up
/// to the fault, and a non-zero exit when the file itself is broken.
@Suite struct DecodeCommandTests {
    static let capture = repoRoot.appendingPathComponent("Captures/nbdsh-all-simple/session.pcap").path

    /// Classic pcap: 24-byte file header, then 16-byte record headers (ts_sec, ts_usec,
    /// incl_len, orig_len, little-endian here) and the frames.
    func records(_ data: Data) -> [(offset: Int, length: Int)] {
        let b = [UInt8](data)
        func le32(_ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 | Int(b[i + 2]) << 16 | Int(b[i + 3]) << 24 }
        var out: [(Int, Int)] = []
        var i = 24
        while i + 16 <= b.count {
            let n = le32(i + 8)
            out.append((i, n))
            i += 16 + n
        }
        return out
    }

    func decode(_ s: Scratch, _ file: String, _ extra: [String] = []) throws -> (Scratch.Result, String) {
        let r = try s.run(nbdtapBinary, ["decode", file, "--log", s.path("out.log")] + extra, timeout: 60)
        return (r, (try? String(contentsOfFile: s.path("out.log"), encoding: .utf8)) ?? "")
    }

    /// Output paths are written in place: `--view summary` (no log: /dev/null) and
    /// `--stats /dev/null` leave /dev/null the character device it was (a rename over it
    /// once made it a regular file, as root), and a --stats file gets the table.
    @Test func devNullStaysADevice() throws {
        let s = try Scratch()
        func isCharDevice() -> Bool {
            var st = stat()
            return stat("/dev/null", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR
        }
        try #require(isCharDevice())
        let r = try s.run(nbdtapBinary, ["decode", "--view", "summary", Self.capture, "--stats", "/dev/null"], timeout: 60)
        #expect(r.status == 0, "\(r.output)")
        #expect(isCharDevice())
        let r2 = try s.run(nbdtapBinary, ["decode", Self.capture, "--log", "/dev/null", "--stats", s.path("stats.txt")], timeout: 60)
        #expect(r2.status == 0, "\(r2.output)")
        #expect(isCharDevice())
        #expect(s.contents("stats.txt").contains("WRITE"))
    }

    @Test func truncatedFileGivesResultsUpToTheFault() throws {
        let s = try Scratch()
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.capture))
        let recs = records(data)
        let cut = recs[recs.count * 2 / 3].offset + 16 + 5  // inside a frame
        try data.prefix(cut).write(to: URL(fileURLWithPath: s.path("t.pcap")))
        let (r, log) = try decode(s, s.path("t.pcap"))
        #expect(r.status != 0)
        #expect(r.output.contains("t.pcap:") && r.output.contains("frame"), "\(r.output)")
        #expect(log.contains("Write id=1"))
        // The connection the file cut off is closed at the last time seen, not at 0.
        #expect(log.contains("Disconnect transactions="))
        #expect(!log.contains("1970-01-01"), "\(log)")
    }

    @Test func notAPcap() throws {
        let s = try Scratch()
        try "this is not a capture\n".write(toFile: s.path("x.pcap"), atomically: true, encoding: .utf8)
        let (r, _) = try decode(s, s.path("x.pcap"))
        #expect(r.status != 0)
        #expect(r.output.split(separator: "\n").count == 1, "\(r.output)")
        #expect(r.output.contains("x.pcap"))
    }

    @Test func corruptAndEnormousRecordHeaders() throws {
        let s = try Scratch()
        var data = try Data(contentsOf: URL(fileURLWithPath: Self.capture))
        let recs = records(data)
        let at = recs[10].offset + 8
        // incl_len = 0x7fffffff: libpcap refuses it rather than allocating 2 GB.
        data.replaceSubrange(at..<at + 4, with: [0xff, 0xff, 0xff, 0x7f])
        try data.write(to: URL(fileURLWithPath: s.path("c.pcap")))
        let (r, log) = try decode(s, s.path("c.pcap"))
        #expect(r.status != 0)
        #expect(r.output.contains("frame 11") || r.output.contains("frame 10"), "\(r.output)")
        #expect(log.contains("Greeting"))
    }

    @Test func zeroLengthRecordIsSkipped() throws {
        let s = try Scratch()
        var data = try Data(contentsOf: URL(fileURLWithPath: Self.capture))
        let recs = records(data)
        // Insert a record with no bytes after the fifth (ts copied, lengths 0).
        let ins = recs[5].offset
        let empty = Data(data[ins..<ins + 8]) + Data([0, 0, 0, 0, 0, 0, 0, 0])
        data.insert(contentsOf: empty, at: ins)
        try data.write(to: URL(fileURLWithPath: s.path("z.pcap")))
        let (r, log) = try decode(s, s.path("z.pcap"))
        let (r0, log0) = try decode(s, Self.capture)
        #expect(r.status == 0 && r0.status == 0, "\(r.output)")
        #expect(log == log0)
    }

    @Test func captureWithoutNBD() throws {
        try Peers.require("tshark")
        let s = try Scratch()
        // Text over TCP on a port that is not 10809, written as a pcap by text2pcap's
        // sibling: a hand-built Ethernet/IPv4/TCP frame via Python's struct.
        let py = """
            import struct
            def frame(sport, dport, seq, flags, payload):
                tcp = struct.pack('>HHIIBBHHH', sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
                ip = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, bytes([127,0,0,1]), bytes([127,0,0,1])) + tcp
                return b'\\0' * 12 + b'\\x08\\x00' + ip
            out = open('plain.pcap', 'wb')
            out.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
            frames = [frame(40000, 8080, 1, 0x02, b''), frame(8080, 40000, 1, 0x12, b''),
                      frame(40000, 8080, 2, 0x18, b'GET / HTTP/1.0\\r\\n\\r\\n'), frame(8080, 40000, 2, 0x18, b'HTTP/1.0 200 OK\\r\\n\\r\\nhello')]
            for i, f in enumerate(frames):
                out.write(struct.pack('<IIII', 1700000000, i, len(f), len(f)) + f)
            """
        try py.write(toFile: s.path("mk.py"), atomically: true, encoding: .utf8)
        try s.run("python3", [s.path("mk.py")])
        let check = try s.run("tshark", ["-r", s.path("plain.pcap")])
        #expect(check.output.contains("HTTP"), "\(check.output)")
        let (r, log) = try decode(s, s.path("plain.pcap"))
        #expect(r.status == 0)
        #expect(log.isEmpty)
        #expect(r.output.contains("no NBD connection found"), "\(r.output)")
    }

    @Test func viewsAndPorts() throws {
        let s = try Scratch()
        let packets = try s.run(nbdtapBinary, ["decode", "--view", "packets", Self.capture])
        #expect(packets.status == 0)
        #expect(packets.output.contains("Request WRITE_ZEROES"))
        let summary = try s.run(nbdtapBinary, ["decode", "--view", "summary", "--stats-format", "json", Self.capture])
        let json = try JSONSerialization.jsonObject(with: Data(summary.output.utf8)) as? [String: Any]
        #expect(json?["connections"] as? Int == 1)
    }
}

/// `nbdtap profiles` lists every legacy-peer profile with what it hides and its sources.
@Suite struct ProfilesCommandTests {
    @Test func listsEveryProfile() throws {
        let s = try Scratch()
        let all = try s.run(nbdtapBinary, ["profiles"])
        #expect(all.status == 0)
        for name in ["nbd-server-3.24", "nbdkit-1.32", "qemu-nbd-7.2", "pre-fast-zero", "pre-structured-replies", "oldstyle"] {
            #expect(all.output.contains("\(name): "), "\(name) missing from:\n\(all.output)")
        }
        let one = try s.run(nbdtapBinary, ["profiles", "pre-fast-zero"])
        #expect(one.output.contains("hides SEND_FAST_ZERO") && !one.output.contains("nbdkit-1.32:"))
        let bad = try s.run(nbdtapBinary, ["profiles", "no-such"])
        #expect(bad.status != 0 && bad.output.contains("known:"))
    }
}
