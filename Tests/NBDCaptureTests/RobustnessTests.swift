import Foundation
import NBDCapture
import NBDConversation
import NIOCore
import Testing

/// Any bytes give a segment or a skip reason; any segment sequence keeps the
/// reassembler within its invariants. Seeded, so failures reproduce.
struct RobustnessTests {
    static let linkTypes: [LinkType] = LinkType.supported + [LinkType(rawValue: 9999)]

    @Test func everyPrefixOfAValidFrameParsesOrSkips() {
        let t = tcpBytes(clientV6, serverV6, seq: 1, flags: .ack, payload: pattern(0, 40))
        let hop: (UInt8, [UInt8]) = (0, [0, 0, 1, 4, 0, 0, 0, 0])
        let frames: [(LinkType, [UInt8])] = [
            (.ethernet, frame(clientV4, serverV4, seq: 1, pattern(0, 40))),
            (.ethernet, ethernet(ipv6(clientV6.address, serverV6.address, t, extensions: [hop]), etherType: 0x86DD, vlans: [5])),
            (.null, [30, 0, 0, 0] + ipv6(clientV6.address, serverV6.address, t)),
            (.linuxSLL2, be16(0x0800) + [UInt8](repeating: 0, count: 18) + Array(frame(clientV4, serverV4, seq: 1, pattern(0, 9)).dropFirst(14))),
        ]
        for (lt, f) in frames {
            for n in 0...f.count {
                switch FrameParser.parse(ByteBuffer(bytes: Array(f.prefix(n))), linkType: lt) {
                case .tcp(let s):
                    #expect(s.payload.readableBytes <= 40)
                    #expect(n == f.count || s.missingPayloadBytes > 0 || lt == .null)
                case .skipped:
                    break
                }
            }
        }
    }

    @Test func randomBytesNeverTrap() {
        var rng = SplitMix(seed: 7)
        var parsed = 0
        for lt in RobustnessTests.linkTypes {
            for _ in 0..<3000 {
                let n = rng.below(120)
                var bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                // Often make it look like IP so deeper layers get exercised too.
                if rng.below(2) == 0, let off = [0, 4, 14, 16, 20].randomElement(using: &rng), off < n {
                    bytes[off] = rng.below(2) == 0 ? 0x45 : 0x60
                    if n >= 14 && lt == .ethernet { bytes[12] = 0x08; bytes[13] = 0 }
                    if off + 9 < n && bytes[off] == 0x45 { bytes[off + 9] = 6; bytes[off + 6] = 0 }
                    if off + 6 < n && bytes[off] == 0x60 { bytes[off + 6] = 6 }
                }
                if case .tcp = FrameParser.parse(ByteBuffer(bytes: bytes), linkType: lt) { parsed += 1 }
            }
        }
        #expect(parsed > 0)
    }

    @Test func randomSegmentsKeepTheReassemblerConsistent() {
        var rng = SplitMix(seed: 11)
        let ends = [clientV4, serverV4, Endpoint(address: IPAddress(v4: 10, 0, 0, 9), port: 10809)]
        let r = TCPReassembler(configuration: .init(maxHeldBytesPerDirection: 4096))
        var events: [CaptureEvent] = []
        var lastFrame = 0
        let payloads = [0, 0, 1, 7, 100, 536, 1448, 1500].map { ByteBuffer(bytes: pattern(0, $0)) }
        for i in 1...20_000 {
            let a = ends[rng.below(3)]
            var b = ends[rng.below(3)]
            if b == a { b = ends[(ends.firstIndex(of: a)! + 1) % 3] }
            let flagsPool: [TCPFlags] = [.ack, [.ack, .psh], .syn, [.syn, .ack], [.fin, .ack], .rst, [.ack, .urg]]
            let seq = rng.below(4) == 0 ? UInt32(truncatingIfNeeded: rng.next()) : UInt32(1000 + rng.below(20_000))
            let seg = TCPSegment(source: a, destination: b, sequenceNumber: seq,
                                 acknowledgmentNumber: UInt32(1000 + rng.below(20_000)),
                                 flags: flagsPool[rng.below(flagsPool.count)],
                                 payload: payloads[rng.below(payloads.count)],
                                 missingPayloadBytes: rng.below(10) == 0 ? rng.below(3000) : 0)
            r.process(seg, frame: i, time: UInt64(i), into: &events)
            lastFrame = i
        }
        r.finish(frame: lastFrame, time: UInt64(lastFrame), into: &events)
        // Events are in frame order and every data event belongs to a known connection.
        var prev = 0
        var known = Set<Int>()
        var bad: [String] = []
        for e in events {
            switch e {
            case .connection(let info):
                known.insert(info.id)
            case let .data(c, _, b, f, _):
                if !known.contains(c) || b.readableBytes == 0 || f < prev { bad.append("\(e)") }
                prev = f
            case let .gap(c, _, n, f, _):
                if !known.contains(c) || n == 0 || f < prev { bad.append("\(e)") }
                prev = f
            case let .end(c, _, _, f, _):
                if !known.contains(c) || f < prev { bad.append("\(e)") }
                prev = f
            }
        }
        #expect(bad.isEmpty, "\(bad.prefix(3))")
        #expect(r.counters.connections == known.count && known.count > 1)
    }

    @Test func captureReaderStepsAndFinishes() throws {
        var p = PcapFile()
        let f = Flow()
        // The hole at 10..<20 is never filled: the final flush declares it.
        for fr in f.handshake + [f.c(0, 10), f.c(20, 10)] { p.add(fr) }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("s.pcap")
        try p.write(to: path)
        let reader = try CaptureReader(file: path.path)
        var events: [CaptureEvent] = []
        var steps = 0
        while reader.step(into: &events) { steps += 1 }
        #expect(steps == 5 && reader.status == .endOfFile)
        #expect(!reader.step(into: &events))
        let gaps = events.compactMap { if case let .gap(_, _, n, fr, _) = $0 { return (n, fr) } else { return nil } }
        #expect(gaps.count == 1 && gaps.first?.0 == 10 && gaps.first?.1 == 5)
        #expect(reader.counters.frames == 5 && reader.counters.gaps == 1 && reader.counters.outOfOrderSegments == 1)
    }
}
