import Foundation
import NBDCapture
import NBDConversation
import NBDReport
import NIOCore
import Testing

/// nbdtap's own reader of capture files (`MappedCapture`) against libpcap, the independent
/// source: the same frames (numbers, times, lengths, bytes) for every capture in Captures/
/// and for other forms of them (pcapng, nanosecond, big-endian, files built block by
/// block), the same frames before a fault in damaged files, and the same decode (log and
/// statistics) whether frames are decoded in place or read through libpcap as before.
struct MappedCaptureTests {
    /// Every pcap file under Captures/, as "dir/file".
    static let files: [String] = {
        let fm = FileManager.default
        var out: [String] = []
        for d in ((try? fm.contentsOfDirectory(atPath: capturesDir.path)) ?? []).sorted() {
            let dir = capturesDir.appendingPathComponent(d)
            for f in ((try? fm.contentsOfDirectory(atPath: dir.path)) ?? []).sorted() where f.hasSuffix(".pcap") {
                out.append("\(d)/\(f)")
            }
        }
        return out
    }()

    struct Frame: Equatable, CustomStringConvertible {
        var number: Int
        var time: UInt64
        var captured: Int
        var original: Int
        var linkType: Int32
        var bytes: [UInt8]
        var description: String { "#\(number) t=\(time) \(captured)/\(original) lt=\(linkType)" }
    }

    /// Frames, final status, and the open error if the file was refused.
    struct Reading {
        var frames: [Frame] = []
        var status: PcapReadStatus = .reading
        var openError: String?
    }

    func viaLibpcap(_ path: String) -> Reading {
        var r = Reading()
        do {
            let s = try PcapSource(file: path)
            while let p = s.next() {
                r.frames.append(Frame(number: p.frameNumber, time: p.timestamp, captured: p.capturedLength, original: p.originalLength,
                                      linkType: s.linkType.rawValue, bytes: Array(p.bytes.readableBytesView)))
            }
            r.status = s.status
        } catch {
            r.openError = "\(error)"
        }
        return r
    }

    func viaMapping(_ path: String) -> Reading {
        var r = Reading()
        do {
            let m = try MappedCapture(file: path)
            while let f = m.next() {
                r.frames.append(Frame(number: f.frameNumber, time: f.timestamp, captured: f.capturedLength, original: f.originalLength,
                                      linkType: f.linkType.rawValue, bytes: Array(f.bytes)))
            }
            r.status = m.status
        } catch {
            r.openError = error.message
        }
        return r
    }

    func expectSameFrames(_ path: String, _ what: String) {
        let a = viaLibpcap(path), b = viaMapping(path)
        #expect(a.openError == nil && b.openError == nil, "\(what): \(a.openError ?? "") / \(b.openError ?? "")")
        #expect(a.status == .endOfFile && b.status == .endOfFile, "\(what): \(a.status) / \(b.status)")
        #expect(a.frames.count == b.frames.count && !a.frames.isEmpty, "\(what)")
        if let i = zip(a.frames, b.frames).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            Issue.record("\(what): frame \(i + 1): libpcap \(a.frames[i]), mapped \(b.frames[i])")
        }
    }

    @Test(arguments: files)
    func sameFramesAsLibpcap(_ name: String) {
        expectSameFrames(capturesDir.appendingPathComponent(name).path, name)
    }

    /// The byte-swapped form of a little-endian classic pcap file (header and records).
    func bigEndian(_ le: [UInt8]) -> [UInt8] {
        var b = le
        func swap(_ at: Int, _ n: Int) { b[at..<(at + n)].reverse() }
        swap(0, 4); swap(4, 2); swap(6, 2)
        for o in stride(from: 8, to: 24, by: 4) { swap(o, 4) }
        var at = 24
        while at + 16 <= b.count {
            let caplen = Int(le[at + 8]) | Int(le[at + 9]) << 8 | Int(le[at + 10]) << 16 | Int(le[at + 11]) << 24
            for o in stride(from: at, to: at + 16, by: 4) { swap(o, 4) }
            at += 16 + caplen
        }
        return b
    }

    /// Each capture as pcapng (micro- and nanosecond, by editcap), as a nanosecond pcap,
    /// and big-endian: libpcap and the mapped reader agree on every frame.
    @Test(arguments: ["nbdinfo-list/session.pcap", "qemu10-map/session.pcap", "dropped-packets/session.pcap",
                      "qemu10-convert/session.pcap"])
    func sameFramesInOtherForms(_ name: String) throws {
        let tmp = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let source = capturesDir.appendingPathComponent(name).path
        let ng = tmp.appendingPathComponent("a.pcapng").path
        let ns = tmp.appendingPathComponent("ns.pcap").path
        let nsng = tmp.appendingPathComponent("ns.pcapng").path
        let be = tmp.appendingPathComponent("be.pcap")
        try #require(try runTool("/usr/bin/editcap", ["-F", "pcapng", source, ng]) == 0)
        try #require(try runTool("/usr/bin/editcap", ["-F", "nsecpcap", "-t", "0.000000123", source, ns]) == 0)
        try #require(try runTool("/usr/bin/editcap", ["-F", "pcapng", ns, nsng]) == 0)
        try Data(bigEndian(Array(try Data(contentsOf: URL(fileURLWithPath: source))))).write(to: be)
        for (path, what) in [(ng, "pcapng"), (ns, "nsecpcap"), (nsng, "nanosecond pcapng"), (be.path, "big-endian")] {
            expectSameFrames(path, "\(name) as \(what)")
        }
    }

    /// Frames of a real capture to build files from.
    var someFrames: [Frame] { viaLibpcap(capturesDir.appendingPathComponent("oldstyle/session.pcap").path).frames }

    /// Interfaces with microsecond, binary (2^-20, with an offset) and nanosecond time
    /// stamps, simple and obsolete packet blocks, blocks to skip, and a second section:
    /// libpcap and the mapped reader agree.
    @Test func pcapngBuiltBlockByBlock() throws {
        let frames = someFrames
        try #require(frames.count >= 12)
        var f = PcapngFile()
        f.section()
        f.interface()
        f.interface(tsresol: 0x80 | 20, tsoffset: 100)
        f.interface(tsresol: 9)
        f.block(4, f.u16(0) + f.u16(0))  // name resolution, empty
        for (i, fr) in frames.prefix(9).enumerated() {
            f.enhanced(fr.bytes, interface: UInt32(i % 3), units: [UInt64(1_700_000_000_123_456), 1_700_000_000 << 20 | 777_777, 1_700_000_000_123_456_789][i % 3] + UInt64(i))
        }
        f.block(5, f.u32(0) + f.u32(0) + f.u32(0))  // interface statistics
        f.block(0x0000_0BAD, f.u32(32473) + [1, 2, 3])  // custom block
        f.simple(frames[9].bytes)
        f.obsolete(frames[10].bytes, interface: 1, units: 1_700_000_001 << 20)
        f.section()
        f.interface(tsresol: 3)
        f.enhanced(frames[11].bytes, units: 1_700_000_002_345)
        let tmp = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let u = tmp.appendingPathComponent("built.pcapng")
        try f.write(to: u)
        expectSameFrames(u.path, "built pcapng")
        let m = viaMapping(u.path)
        #expect(m.frames.count == 12)
        #expect(m.frames.first?.time == 1_700_000_000_123_456_000)
        #expect(m.frames[2].time == 1_700_000_000_123_456_791)
        #expect(m.frames.last?.time == 1_700_000_002_345_000_000)
    }

    /// What libpcap refuses and the mapped reader reads: a second section in the other byte
    /// order, and an interface of another link type. Checked against the values written.
    @Test func sectionsInBothByteOrdersAndMixedLinkTypes() throws {
        let frames = someFrames
        var f = PcapngFile()
        f.section()
        f.interface(tsresol: 9)
        f.enhanced(frames[0].bytes, units: 1_700_000_000_000_000_001)
        f.section(bigEndian: true)
        f.interface(tsresol: 6)
        f.interface(linkType: 101, tsresol: 6)
        f.enhanced(frames[1].bytes, interface: 0, units: 1_700_000_000_000_002)
        f.enhanced(Array(frames[2].bytes.dropFirst(14)), interface: 1, units: 1_700_000_000_000_003, originalLength: frames[2].bytes.count)
        let tmp = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let u = tmp.appendingPathComponent("mixed.pcapng")
        try f.write(to: u)
        let m = viaMapping(u.path)
        #expect(m.status == .endOfFile)
        #expect(m.frames.map(\.time) == [1_700_000_000_000_000_001, 1_700_000_000_000_002_000, 1_700_000_000_000_003_000])
        #expect(m.frames.map(\.linkType) == [1, 1, 12])
        #expect(m.frames.map(\.bytes) == [frames[0].bytes, frames[1].bytes, Array(frames[2].bytes.dropFirst(14))])
        #expect(m.frames[2].original == frames[2].bytes.count && m.frames[2].captured == frames[2].bytes.count - 14)
        // libpcap stops at the second section (it refuses a change of byte order).
        let l = viaLibpcap(u.path)
        #expect(l.frames.count == 1)
    }

    // MARK: - Damaged files

    /// Offsets of the records of a little-endian classic pcap file.
    func recordOffsets(_ b: [UInt8]) -> [Int] {
        var out: [Int] = []
        var at = 24
        while at + 16 <= b.count {
            out.append(at)
            at += 16 + (Int(b[at + 8]) | Int(b[at + 9]) << 8 | Int(b[at + 10]) << 16)
        }
        return out
    }

    func put32(_ b: inout [UInt8], _ at: Int, _ v: UInt32) { b[at..<(at + 4)] = le32(v)[...] }

    /// A pcapng file of `frames` (one interface), and the offset of each packet block.
    func pcapng(_ frames: [Frame]) -> ([UInt8], [Int]) {
        var f = PcapngFile()
        f.section()
        f.interface()
        var offsets: [Int] = []
        for (i, fr) in frames.enumerated() {
            offsets.append(f.bytes.count)
            f.enhanced(fr.bytes, units: 1_700_000_000_000_000 + UInt64(i))
        }
        return (f.bytes, offsets)
    }

    /// Each damage, the message it must give, and libpcap's reading of the same bytes: both
    /// refuse the file, or both deliver the same frames and fail at the same frame.
    @Test func damagedFilesGiveTheirMessageAndTheFramesBefore() throws {
        let pcap = Array(try Data(contentsOf: capturesDir.appendingPathComponent("oldstyle/session.pcap")))
        let recs = recordOffsets(pcap)
        let (ng, blocks) = pcapng(someFrames)
        try #require(recs.count > 8 && blocks.count > 8)
        var cases: [(String, [UInt8], String)] = []
        cases.append(("pcap file header cut", Array(pcap.prefix(10)), "truncated dump file; tried to read 24 file header bytes"))
        cases.append(("bad magic", Array("ABCD".utf8) + pcap.dropFirst(4), "unknown file format"))
        cases.append(("pcap record header cut", Array(pcap.prefix(recs[5] + 7)), "the record header at byte \(recs[5]) has 7 of 16 bytes"))
        cases.append(("pcap record data cut", Array(pcap.prefix(recs[5] + 16 + 3)), "the record at byte \(recs[5]) has 3 of its"))
        var past = pcap
        put32(&past, recs.last! + 8, 60_000)
        cases.append(("pcap length past the end", past, "the record at byte \(recs.last!) has"))
        var huge = pcap
        put32(&huge, recs[5] + 8, 0x7FFF_FFFF)
        cases.append(("pcap huge length", huge, "invalid packet capture length 2147483647, bigger than"))
        cases.append(("pcapng section header cut", Array(ng.prefix(20)), "truncated pcapng file: the block at byte 0 has 20 of its 28 bytes"))
        for (what, value, message) in [("zero", UInt32(0), "has a length of 0 < 12"), ("huge", 0x7FFF_FFF0, "has a length of 2147483632 > maximum 16777216"),
                                       ("odd", 30, "that is not a multiple of 4"), ("past the end", UInt32(ng.count - blocks[5] + 400), "truncated pcapng file: the block at byte \(blocks[5])")] {
            var b = ng
            put32(&b, blocks[5] + 4, value)
            cases.append(("pcapng \(what) block length", b, message))
        }
        var trailer = ng
        put32(&trailer, blocks[6] - 4, 999)
        cases.append(("pcapng trailer mismatch", trailer, "the pcapng block at byte \(blocks[5]) has lengths"))
        var caplen = ng
        put32(&caplen, blocks[5] + 20, 200_000)
        cases.append(("pcapng captured length past its block", caplen, "the packet block at byte \(blocks[5]) is too short"))
        var interface = ng
        put32(&interface, blocks[5] + 8, 3)
        cases.append(("pcapng unknown interface", interface, "on interface 3, which has no Interface Description Block"))
        let tmp = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        for (i, (what, bytes, message)) in cases.enumerated() {
            let u = tmp.appendingPathComponent("damaged-\(i)")
            try Data(bytes).write(to: u)
            let l = viaLibpcap(u.path), m = viaMapping(u.path)
            if let refused = m.openError {
                #expect(refused.contains(message), "\(what): \(refused)")
                #expect(l.openError != nil, "\(what): libpcap opened it")
                continue
            }
            guard case let .error(got, frame) = m.status else {
                Issue.record("\(what): status \(m.status)")
                continue
            }
            #expect(got.contains(message), "\(what): \(got)")
            #expect(frame == m.frames.count + 1 && m.frames.count >= 5, "\(what)")
            if case let .error(_, libpcapFrame) = l.status {
                #expect(libpcapFrame == frame, "\(what)")
            } else {
                Issue.record("\(what): libpcap \(l.status)")
            }
            #expect(l.frames == m.frames, "\(what)")
        }
    }

    /// A file cut short by someone else while it is being read: touching the mapped pages
    /// past its new end would raise SIGBUS and kill the process. The reader instead stops
    /// with a message; the frames before the cut are libpcap's frames of the whole file.
    @Test(arguments: ["pcap", "pcapng"])
    func fileShrunkWhileReadStopsWithAMessage(_ form: String) throws {
        let tmp = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let source = capturesDir.appendingPathComponent("qemu10-mixed/session.pcap").path
        let path = tmp.appendingPathComponent("cut.\(form)").path
        if form == "pcapng" {
            try #require(try runTool("/usr/bin/editcap", ["-F", "pcapng", source, path]) == 0)
        } else {
            try FileManager.default.copyItem(atPath: source, toPath: path)
        }
        let whole = viaLibpcap(path).frames
        try #require(whole.count > 100)
        let m = try MappedCapture(file: path)
        var got: [Frame] = []
        while got.count < whole.count / 2, let f = m.next() {
            got.append(Frame(number: f.frameNumber, time: f.timestamp, captured: f.capturedLength, original: f.originalLength,
                             linkType: f.linkType.rawValue, bytes: Array(f.bytes)))
        }
        try #require(got.count == whole.count / 2 && m.status == .reading)
        #expect(got == Array(whole.prefix(got.count)))
        // Far below where reading stands, so every page from there on is gone.
        try #require(truncate(path, 64 << 10) == 0)
        var after = 0
        while m.next() != nil { after += 1 }
        guard case let .error(message, frame) = m.status else {
            Issue.record("status \(m.status) after \(after) more frames")
            return
        }
        #expect(message.contains("the file shrank to 65536 bytes while it was read"), "\(message)")
        #expect(frame >= got.count && frame <= got.count + 1, "frame \(frame), \(got.count) read before the cut")
        #expect(after == 0, "\(after) frames read from a file that was gone")
    }

    /// The guard only turns faults in a reader's own window into zeros: a bus error
    /// anywhere else (here a mapping of nbdtap's caller, its file shrunk) still ends the
    /// process by SIGBUS, as it would without the guard.
    @Test func busErrorsOutsideTheReadersStillCrash() async {
        await #expect(processExitsWith: .signal(SIGBUS)) {
            let dir = try temporaryDirectory()
            let capture = capturesDir.appendingPathComponent("oldstyle/session.pcap").path
            let reader = try MappedCapture(file: capture)  // installs the guard's handler
            _ = reader.next()
            let path = dir.appendingPathComponent("other").path
            try Data(repeating: 7, count: 1 << 20).write(to: URL(fileURLWithPath: path))
            let fd = open(path, O_RDONLY)
            guard fd >= 0, let p = mmap(nil, 1 << 20, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else { return }
            _ = truncate(path, 0)
            try FileManager.default.removeItem(at: dir)  // the mapping outlives the name
            let byte = p.load(fromByteOffset: 512 << 10, as: UInt8.self)
            print("read \(byte) past the end of a shrunk file", reader.frameCount)
        }
    }

    // MARK: - Decoding through both readers

    struct Decoded: Equatable {
        var log: String
        var stats: String
        var status: PcapReadStatus
    }

    /// Decodes as `nbdtap decode` does: in place (mapped) or through libpcap, frames copied.
    func decode(_ path: String, reader: CaptureInput.Reader, format: LogFormat, packets: Bool) throws -> (Decoded, UInt64) {
        let r = try CaptureReader(file: path, reader: reader)
        let sessions = CaptureSessions(logFormat: format, packetLines: packets)
        var text: [UInt8] = []
        switch reader {
        case .mapped:
            while r.step(sessions: sessions, out: &text) {}
        case .libpcap:
            r.forEachEvent { sessions.handle($0, reader: r.reassembler, out: &text) }
        }
        sessions.finish(out: &text)
        let stats = StatsFormatter.json(total: sessions.total, perConnection: sessions.finished, omitted: sessions.omittedConnections)
        return (Decoded(log: String(decoding: text, as: UTF8.self), stats: stats, status: r.status), r.bytesPassed)
    }

    func expectSameDecode(_ path: String, _ what: String, passes: Bool) throws {
        for format in [LogFormat.nbdkit, .json] {
            for packets in [false, true] {
                let (a, passed) = try decode(path, reader: .mapped, format: format, packets: packets)
                let (b, _) = try decode(path, reader: .libpcap, format: format, packets: packets)
                #expect(a.log == b.log, "\(what) \(format) packets=\(packets)")
                #expect(a.stats == b.stats, "\(what) \(format) packets=\(packets)")
                #expect(a.status == b.status, "\(what)")
                #expect(!a.log.isEmpty)
                if packets { #expect(passed == 0, "\(what): the packets view needs every byte") }
                if passes && !packets { #expect(passed > 0, "\(what): no payload was passed over") }
            }
        }
    }

    /// Every capture: the same log (both formats, and the packets view) and statistics,
    /// and payload was passed over, not copied, where the captures move data.
    @Test(arguments: files)
    func decodeInPlaceGivesTheSameLogAndStatistics(_ name: String) throws {
        // Captures that copy or write megabytes; the others may have no payload longer
        // than the first piece of a frame.
        let movesData = ["qemu-img-convert", "qemu10-convert", "nbdcopy-multiconn", "qemu10-io-all", "qemu10-mixed",
                         "dropped-packets"].contains(where: name.hasPrefix)
        try expectSameDecode(capturesDir.appendingPathComponent(name).path, name, passes: movesData)
    }

    /// Segments out of order, duplicated and overlapping, written to a file: held and
    /// retransmitted data takes the copying path, the rest is passed, and the decode is
    /// the same as libpcap's frames give.
    @Test(arguments: ["nbdsh-all-structured", "qemu-img-convert", "nbdcopy-multiconn"])
    func mangledSegmentsDecodeTheSame(_ name: String) throws {
        let mangler = MangledCaptureTests()
        let original = try mangler.segments(name)
        let tmp = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        for seed: UInt64 in [1, 2] {
            var p = PcapFile()
            for s in mangler.mangle(original, seed: seed) {
                let g = s.segment
                p.add(frame(g.source, g.destination, seq: g.sequenceNumber, ack: g.acknowledgmentNumber, flags: g.flags,
                            Array(g.payload.readableBytesView)),
                      seconds: UInt32(s.time / 1_000_000_000), fraction: UInt32(s.time % 1_000_000_000 / 1000))
            }
            let u = tmp.appendingPathComponent("mangled-\(seed).pcap")
            try p.write(to: u)
            try expectSameDecode(u.path, "\(name) mangled \(seed)", passes: true)
        }
    }
}
