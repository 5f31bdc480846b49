import NBDConversation
import NBDProtocol
import NIOCore
import Testing

/// Any bytes end in events or a violation, never a crash, a trap or a hang; and every byte
/// fed is accounted for (nothing is held beyond the decoder's limits).
struct FuzzTests {
    func check(_ records: [Transcript.Record], rng: inout SeededRandom) {
        var decoder = ConversationDecoder()
        var events: [ConversationEvent] = []
        var fed: [StreamDirection: UInt64] = [.clientToServer: 0, .serverToClient: 0]
        for r in records {
            var b = r.bytes
            while b.readableBytes > 0 {
                let n = Int.random(in: 1...max(1, b.readableBytes), using: &rng)
                decoder.feed(r.direction, b.readSlice(length: n)!, at: r.time, into: &events)
                fed[r.direction]! += UInt64(n)
            }
        }
        decoder.finish(.clientToServer, at: 0, into: &events)
        decoder.finish(.serverToClient, at: 0, into: &events)
        #expect(events.filter { $0.kind == .closed }.count == 2)
        for d in [StreamDirection.clientToServer, .serverToClient] {
            #expect(decoder.bytesSeen(d) == fed[d]!)
        }
        #expect(decoder.requestsInFlight == 0)
    }

    func mutate(_ t: Transcript, _ rng: inout SeededRandom) -> [Transcript.Record] {
        var records = t.records
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let i = Int.random(in: 0..<records.count, using: &rng)
            var bytes = Array(records[i].bytes.readableBytesView)
            switch Int.random(in: 0..<5, using: &rng) {
            case 0 where !bytes.isEmpty:
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            case 1 where !bytes.isEmpty:
                bytes.removeSubrange(Int.random(in: 0..<bytes.count, using: &rng)...)
            case 2:
                bytes.insert(contentsOf: (0..<Int.random(in: 1...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) },
                             at: Int.random(in: 0...bytes.count, using: &rng))
            case 3 where bytes.count >= 8:
                // Large lengths and counts are where a careless parser allocates.
                let at = Int.random(in: 0...(bytes.count - 4), using: &rng)
                bytes.replaceSubrange(at..<at + 4, with: [0xff, 0xff, 0xff, UInt8.random(in: 0...255, using: &rng)])
            default:
                records.remove(at: i)
                if records.isEmpty { return [] }
                continue
            }
            records[i].bytes = ByteBuffer(bytes: bytes)
        }
        return records
    }

    @Test func mutatedConversations() throws {
        let bases = try recordedSessions.map(loadTranscript) + scenarios()
        var rng = SeededRandom(seed: 2026)
        for n in 0..<3000 {
            let base = bases[n % bases.count]
            check(mutate(base, &rng), rng: &rng)
        }
    }

    @Test func randomConversations() {
        var rng = SeededRandom(seed: 7)
        let magics: [[UInt8]] = [[0x4e, 0x42, 0x44, 0x4d, 0x41, 0x47, 0x49, 0x43], [0x25, 0x60, 0x95, 0x13], [0x67, 0x44, 0x66, 0x98],
                                 [0x66, 0x8e, 0x33, 0xef], [0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54], [0, 3, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9]]
        for _ in 0..<1000 {
            var records: [Transcript.Record] = []
            for _ in 0..<Int.random(in: 1...12, using: &rng) {
                var bytes: [UInt8] = Bool.random(using: &rng) ? magics.randomElement(using: &rng)! : []
                bytes += (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                records.append(Transcript.Record(direction: Bool.random(using: &rng) ? .clientToServer : .serverToClient, time: 0, bytes: ByteBuffer(bytes: bytes)))
            }
            check(records, rng: &rng)
        }
    }
}
