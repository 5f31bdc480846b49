import Foundation
import NBDCapture
import NIOCore
import Testing

/// Files read through libpcap: link types as stored in files, time stamps, and damaged
/// or hostile files, each of which must end in a clear status, never a crash.
struct PcapFileTests {
    let f = Flow()
    /// A small session: handshake, 100 client bytes, 50 server bytes.
    var session: [[UInt8]] { f.handshake + [f.c(0, 100), f.s(0, 50)] }

    func write(_ file: PcapFile, _ name: String = "t.pcap") throws -> (URL, String) {
        let dir = try temporaryDirectory()
        let u = dir.appendingPathComponent(name)
        try file.write(to: u)
        return (dir, u.path)
    }

    func sessionFile(linkType: UInt32 = 1, wrap: ([UInt8]) -> [UInt8] = { $0 }) -> PcapFile {
        var p = PcapFile(linkType: linkType)
        for (i, fr) in session.enumerated() { p.add(wrap(fr), fraction: UInt32(i)) }
        return p
    }

    @Test func readsFramesWithNumbersTimesAndLengths() throws {
        var p = PcapFile()
        p.add(session[0], seconds: 1_700_000_000, fraction: 123_456)
        p.add(session[1], seconds: 1_700_000_001, fraction: 7)
        let (dir, path) = try write(p)
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = try PcapSource(file: path)
        #expect(src.linkType == .ethernet)
        let a = try #require(src.next())
        #expect(a.frameNumber == 1 && a.timestamp == 1_700_000_000_123_456_000)
        #expect(a.capturedLength == session[0].count && a.originalLength == session[0].count && !a.isTruncated)
        #expect(Array(a.bytes.readableBytesView) == session[0])
        let b = try #require(src.next())
        #expect(b.frameNumber == 2 && b.timestamp == 1_700_000_001_000_007_000)
        #expect(src.next() == nil && src.status == .endOfFile)
        #expect(src.next() == nil && src.status == .endOfFile)
    }

    @Test func nanosecondFilesKeepNanoseconds() throws {
        var p = PcapFile(nanoseconds: true)
        p.add(session[0], seconds: 1_700_000_000, fraction: 123_456_789)
        let (dir, path) = try write(p)
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = try PcapSource(file: path)
        #expect(src.next()?.timestamp == 1_700_000_000_123_456_789)
    }

    /// The same session stored with each link type libpcap may report.
    @Test(arguments: [
        (UInt32(1), "ethernet"), (0, "null"), (108, "loop"), (101, "raw"), (228, "ipv4"), (113, "sll"), (276, "sll2"),
    ])
    func linkTypesThroughLibpcap(_ linkType: UInt32, _ name: String) throws {
        let wrap: ([UInt8]) -> [UInt8] = { fr in
            let ip = Array(fr.dropFirst(14))
            switch linkType {
            case 0: return [2, 0, 0, 0] + ip
            case 108: return [0, 0, 0, 2] + ip
            case 113: return [0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 8, 0] + ip
            case 276: return [8, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0] + ip
            case 101, 228: return ip
            default: return fr
            }
        }
        let (dir, path) = try write(sessionFile(linkType: linkType, wrap: wrap))
        defer { try? FileManager.default.removeItem(at: dir) }
        let (run, status) = try readCapture(path)
        #expect(status == .endOfFile, "\(name)")
        #expect(run.connections.count == 1 && run.counters.skippedFrames == 0, "\(name)")
        #expect(difference(run.stream(1, .clientToServer), pattern(0, 100)) == nil, "\(name)")
        #expect(difference(run.stream(1, .serverToClient), pattern(0, 50)) == nil, "\(name)")
    }

    @Test func snaplenTruncatedRecordGivesAGap() throws {
        var p = PcapFile(snaplen: 100)
        for fr in f.handshake { p.add(fr) }
        let big = f.c(0, 200)  // 254 bytes on the wire, 100 kept
        p.add(Array(big.prefix(100)), caplen: 100, origlen: UInt32(big.count))
        p.add(f.c(200, 10))
        let (dir, path) = try write(p)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (run, status) = try readCapture(path)
        #expect(status == .endOfFile)
        #expect(run.counters.truncatedFrames == 1)
        #expect(run.gaps(1, .clientToServer) == [154])
        #expect(difference(run.streamWithGaps(1, .clientToServer),
                           pattern(0, 46) + [UInt8](repeating: 0xEE, count: 154) + pattern(200, 10)) == nil)
    }

    @Test func zeroLengthRecordIsSkipped() throws {
        var p = PcapFile()
        p.add(session[0])
        p.add([])
        for fr in session.dropFirst() { p.add(fr) }
        let (dir, path) = try write(p)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (run, status) = try readCapture(path)
        #expect(status == .endOfFile)
        #expect(run.counters.frames == session.count + 1 && run.counters.skipped[.emptyFrame] == 1)
        #expect(difference(run.stream(1, .clientToServer), pattern(0, 100)) == nil)
    }

    @Test func truncatedFileReportsTheFrameAndKeepsEarlierData() throws {
        let whole = sessionFile().bytes
        let lastRecord = 16 + session.last!.count
        // Cut inside the last record's data, then inside its header.
        for cut in [whole.count - 10, whole.count - lastRecord + 5] {
            let (dir, path) = try write(PcapFile(bytes: Array(whole.prefix(cut))))
            defer { try? FileManager.default.removeItem(at: dir) }
            let (run, status) = try readCapture(path)
            guard case let .error(message, frame) = status else {
                Issue.record("status \(status) for cut at \(cut)")
                continue
            }
            #expect(frame == session.count, "cut at \(cut)")
            #expect(message.contains("truncated"), "\(message)")
            #expect(difference(run.stream(1, .clientToServer), pattern(0, 100)) == nil)
        }
    }

    @Test func notAPcapFileGivesLibpcapsMessage() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = dir.appendingPathComponent("notes.txt")
        try Data("this is not a capture, just some text\n".utf8).write(to: text)
        #expect {
            _ = try PcapSource(file: text.path)
        } throws: { error in
            (error as? PcapError)?.message.contains("unknown file format") == true
        }
        let empty = dir.appendingPathComponent("empty.pcap")
        try Data().write(to: empty)
        #expect(throws: PcapError.self) { _ = try PcapSource(file: empty.path) }
        #expect {
            _ = try PcapSource(file: dir.appendingPathComponent("missing.pcap").path)
        } throws: { error in
            (error as? PcapError)?.message.contains("No such file") == true
        }
    }

    @Test func corruptRecordHeaderIsAnError() throws {
        var p = PcapFile()
        p.add(session[0])
        // caplen larger than any snaplen libpcap accepts, with a few bytes after it.
        p.bytes += le32(1_700_000_000) + le32(0) + le32(0x00F0_0000) + le32(60) + [UInt8](repeating: 0xAB, count: 64)
        let (dir, path) = try write(p)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (run, status) = try readCapture(path)
        guard case let .error(message, frame) = status else {
            Issue.record("status \(status)")
            return
        }
        #expect(frame == 2 && run.counters.frames == 1)
        #expect(message.contains("invalid packet capture length"), "\(message)")
    }

    @Test func enormousRecordLengthIsAnErrorNotAnAllocation() throws {
        var p = PcapFile()
        p.add(session[0])
        p.bytes += le32(1_700_000_000) + le32(0) + le32(0x8000_0000) + le32(0x8000_0000) + [1, 2, 3, 4]
        let (dir, path) = try write(p)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (run, status) = try readCapture(path)
        guard case let .error(message, frame) = status else {
            Issue.record("status \(status)")
            return
        }
        #expect(frame == 2 && run.counters.frames == 1)
        #expect(message.contains("invalid packet capture length 2147483648"), "\(message)")
    }

    @Test func garbageRecordsAfterAValidHeaderNeverCrash() throws {
        var rng = SplitMix(seed: 42)
        for round in 0..<20 {
            var p = sessionFile()
            let start = 24 + 16 + session[0].count
            for i in 0..<8 { p.bytes[start + Int(rng.next() % UInt64(p.bytes.count - start))] = UInt8(truncatingIfNeeded: rng.next() >> UInt64(i)) }
            let (dir, path) = try write(p)
            defer { try? FileManager.default.removeItem(at: dir) }
            let (run, status) = try readCapture(path)
            #expect(status != .reading, "round \(round)")
            #expect(run.counters.frames >= 1)
        }
    }
}

/// A small deterministic generator, so fuzz-like tests are reproducible.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
}
