import Foundation
import NBDCapture
import NBDConversation
import NIOCore
import Testing

/// Real sessions made harder: segments reordered, duplicated and split into overlapping
/// pieces, or the frames re-wrapped in other link layers. The streams must still equal
/// the independent transcripts.
struct MangledCaptureTests {
    struct Seg {
        var segment: TCPSegment
        var frame: Int
        var time: UInt64
    }

    func segments(_ name: String) throws -> [Seg] {
        let src = try PcapSource(file: capturesDir.appendingPathComponent(name).appendingPathComponent("session.pcap").path)
        var out: [Seg] = []
        while let p = src.next() {
            if case .tcp(let s) = FrameParser.parse(p.bytes, linkType: src.linkType) {
                out.append(Seg(segment: s, frame: p.frameNumber, time: p.timestamp))
            }
        }
        return out
    }

    func isPlainData(_ s: Seg) -> Bool {
        s.segment.payload.readableBytes > 0 && s.segment.flags.isDisjoint(with: [.syn, .fin, .rst])
    }

    /// Split each data segment into two overlapping pieces, duplicate some, and swap
    /// neighbouring data segments (never across a SYN, FIN or RST).
    func mangle(_ segs: [Seg], seed: UInt64) -> [Seg] {
        var rng = SplitMix(seed: seed)
        var out: [Seg] = []
        for s in segs {
            let n = s.segment.payload.readableBytes
            if isPlainData(s) && n >= 8 && rng.below(3) == 0 {
                let cut = 1 + rng.below(n - 1)
                let overlap = min(rng.below(8), n - cut)
                var a = s, b = s
                a.segment.payload = s.segment.payload.getSlice(at: s.segment.payload.readerIndex, length: cut + overlap)!
                b.segment.payload = s.segment.payload.getSlice(at: s.segment.payload.readerIndex + cut, length: n - cut)!
                b.segment.sequenceNumber = s.segment.sequenceNumber &+ UInt32(cut)
                out.append(b)  // the later piece first: out of order
                out.append(a)
            } else {
                out.append(s)
            }
            if isPlainData(s) && rng.below(5) == 0 { out.append(s) }
        }
        var i = 0
        while i + 1 < out.count {
            if isPlainData(out[i]) && isPlainData(out[i + 1]) && rng.below(3) == 0 {
                out.swapAt(i, i + 1)
                i += 2
            } else {
                i += 1
            }
        }
        return out
    }

    @Test(arguments: ["nbdsh-all-structured", "qemu-img-convert", "nbdcopy-multiconn", "nbdinfo-list"])
    func reorderedDuplicatedOverlappingSegments(_ name: String) throws {
        let original = try segments(name)
        for seed: UInt64 in [1, 2, 3] {
            let r = TCPReassembler()
            var run = Run()
            for s in mangle(original, seed: seed) {
                r.process(s.segment, frame: s.frame, time: s.time, into: &run.events)
            }
            r.finish(frame: original.last!.frame, time: original.last!.time, into: &run.events)
            run.counters = r.counters
            run.connections = r.allConnections
            let expected = try transcriptsByConnection(capturesDir.appendingPathComponent(name), run.connections)
            #expect(run.connections.count == expected.count)
            #expect(run.counters.gaps == 0, "\(name) seed \(seed)")
            #expect(run.counters.outOfOrderSegments > 0 && run.counters.retransmittedBytes > 0)
            for info in run.connections {
                let t = try #require(expected[info.id])
                for d in [StreamDirection.clientToServer, .serverToClient] {
                    #expect(difference(run.stream(info.id, d), Array(t.stream(d).readableBytesView)) == nil,
                            "\(name) seed \(seed) #\(info.id) \(d.label)")
                }
            }
        }
    }

    /// A capture's frames re-wrapped as Linux cooked v2 and as raw IP, written as pcap and
    /// read back through libpcap.
    @Test(arguments: [UInt32(276), 101, 0])
    func rewrappedLinkLayer(_ linkType: UInt32) throws {
        let name = "nbdsh-all-simple"
        let src = try PcapSource(file: capturesDir.appendingPathComponent(name).appendingPathComponent("session.pcap").path)
        #expect(src.linkType == .ethernet)
        var file = PcapFile(linkType: linkType)
        while let p = src.next() {
            let ip = Array(p.bytes.readableBytesView.dropFirst(14))
            let etherType = Array(p.bytes.readableBytesView.dropFirst(12).prefix(2))
            let wrapped: [UInt8]
            switch linkType {
            case 276: wrapped = etherType + [0, 0, 0, 0, 0, 1, 3, 4, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0] + ip
            case 0: wrapped = [2, 0, 0, 0] + ip
            default: wrapped = ip
            }
            let seconds = UInt32(p.timestamp / 1_000_000_000)
            file.add(wrapped, seconds: seconds, fraction: UInt32(p.timestamp / 1000 % 1_000_000))
        }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("w.pcap")
        try file.write(to: path)
        let (run, status) = try readCapture(path.path)
        #expect(status == .endOfFile)
        let t = try #require(try transcriptsByConnection(capturesDir.appendingPathComponent(name), run.connections)[1])
        #expect(run.connections.count == 1)
        #expect(records(of: run, 1) == t.records.map(Rec.init))
    }
}
