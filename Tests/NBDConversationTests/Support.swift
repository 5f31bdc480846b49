import Foundation
import NBDConversation
import NBDProtocol
import NIOCore

/// The repository root, found from this file's path so tests read Captures/ directly.
let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func captureURL(_ name: String, _ file: String) -> URL {
    repoRoot.appendingPathComponent("Captures").appendingPathComponent(name).appendingPathComponent(file)
}

func loadTranscript(_ name: String) throws -> Transcript {
    let data = try Data(contentsOf: captureURL(name, "session.nbdt"))
    return try Transcript(parsing: ByteBuffer(bytes: data))
}

/// Decodes a transcript fed record by record, then closes both directions.
func decode(_ t: Transcript) -> [ConversationEvent] {
    var decoder = ConversationDecoder()
    var events: [ConversationEvent] = []
    for r in t.records { decoder.feed(r.direction, r.bytes, at: r.time, into: &events) }
    let end = t.records.last?.time ?? 0
    decoder.finish(.clientToServer, at: end, into: &events)
    decoder.finish(.serverToClient, at: end, into: &events)
    return events
}

extension Array where Element == ConversationEvent {
    var requests: [RequestEvent] {
        compactMap { if case .request(let r) = $0.kind { return r } else { return nil } }
    }
    var completed: [CompletedRequest] {
        compactMap { if case .completed(let c) = $0.kind { return c } else { return nil } }
    }
    var violations: [ProtocolViolation] {
        compactMap { if case .violation(let v) = $0.kind { return v } else { return nil } }
    }
}

/// Builds a ByteBuffer from hex, ignoring spaces and newlines: the spec's byte layouts
/// are written out by hand in the tests.
func hexBytes(_ s: String) -> ByteBuffer {
    let digits = s.filter { !$0.isWhitespace }
    var out = ByteBufferAllocator().buffer(capacity: digits.count / 2)
    var i = digits.startIndex
    while i < digits.endIndex {
        let j = digits.index(i, offsetBy: 2)
        out.writeInteger(UInt8(digits[i..<j], radix: 16)!)
        i = j
    }
    return out
}

/// A tiny deterministic PRNG (xorshift64*), so property tests are reproducible by seed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
}
