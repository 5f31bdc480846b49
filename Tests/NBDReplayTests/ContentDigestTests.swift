import NBDConversation
import NBDProtocol
import NIOCore
import Testing
@testable import NBDReplay

/// The digest compares READ data across servers that cut their replies differently.
@Suite struct ContentDigestTests {
    /// Not periodic (a linear congruential sequence), so moved pieces are different bytes.
    func bytes(_ n: Int, seed: UInt32 = 7) -> [UInt8] {
        var x = seed
        return (0..<n).map { _ in x = x &* 1_103_515_245 &+ 12345; return UInt8(truncatingIfNeeded: x >> 16) }
    }

    func digest(_ pieces: [[UInt8]]) -> UInt64 {
        var d = ContentDigest()
        for p in pieces { p.withUnsafeBytes { d.update($0) } }
        return d.value
    }

    @Test func splitDoesNotMatter() {
        let b = bytes(1000)
        let whole = digest([b])
        for cut in [1, 3, 7, 8, 9, 500, 999] {
            #expect(digest([Array(b[..<cut]), Array(b[cut...])]) == whole, "cut at \(cut)")
        }
        #expect(digest(stride(from: 0, to: 1000, by: 13).map { Array(b[$0..<min($0 + 13, 1000)]) }) == whole)
    }

    @Test func contentLengthAndOrderMatter() {
        let b = bytes(4096)
        var c = b
        c[4000] ^= 1
        #expect(digest([b]) != digest([c]))
        #expect(digest([Array(b[..<4095])]) != digest([b]))
        #expect(digest([[0]]) != digest([[0, 0]]))
        #expect(digest([Array(b[2048...]), Array(b[..<2048])]) != digest([b]))
    }

    @Test func zerosAreZeroBytes() {
        var d = ContentDigest()
        d.updateZeros(10_000)
        #expect(d.value == digest([[UInt8](repeating: 0, count: 10_000)]))
    }

    /// Chunks out of order and holes give the digest of the bytes in export order.
    @Test func assemblerPutsPiecesInOrder() {
        let b = bytes(8192)
        var expected = b
        for i in 4096..<6144 { expected[i] = 0 }
        func buf(_ r: Range<Int>) -> ByteBuffer { ByteBuffer(bytes: b[r]) }
        var a = ReadAssembler(length: 8192)
        a.add(.data(buf(6144..<8192)), at: 6144)
        a.add(.zeros(2048), at: 4096)
        a.add(.data(buf(0..<4096)), at: 0)
        #expect(a.summary == .digest({ var d = ContentDigest(); expected.withUnsafeBytes { d.update($0) }; return d }()))
    }

    @Test func assemblerRefusesOverlapsAndGaps() {
        var a = ReadAssembler(length: 8192)
        a.add(.data(ByteBuffer(bytes: bytes(4096))), at: 0)
        a.add(.data(ByteBuffer(bytes: bytes(4096))), at: 2048)
        guard case .unknown = a.summary else { Issue.record("overlap accepted"); return }
        var b = ReadAssembler(length: 8192)
        b.add(.data(ByteBuffer(bytes: bytes(4096))), at: 0)
        guard case .unknown(let why) = b.summary else { Issue.record("half a reply accepted"); return }
        #expect(why.contains("4096 of 8192"))
    }
}

/// Found by FuzzReplay: an OFFSET_DATA chunk whose offset lies before its READ's offset,
/// 10 bytes before, with its data in two pieces, overflowed adding the second piece's position (a trap).
/// The data is refused as outside the request instead.
@Suite struct ReplyTrackerTests {
    @Test func chunkBeforeTheRequestIsRefusedNotATrap() {
        var t = ReplyTracker()
        let read = RequestEvent(id: 1, header: RequestHeader(flags: [], command: .read, cookie: 9, offset: 1000, length: 64), time: 0)
        t.request(read)
        let chunk = ReplyChunkHeader(flags: .done, type: .offsetData, cookie: 9, length: 8 + 64)
        t.announce([
            ConversationEvent(direction: .serverToClient, streamOffset: 0, time: 0, kind: .replyChunk(chunk, .offsetData(offset: 990, dataLength: 64))),
            ConversationEvent(direction: .serverToClient, streamOffset: 20, time: 0,
                              kind: .payload(cookie: 9, span: StreamSpan(direction: .serverToClient, offset: 20, length: 64))),
        ])
        let data = ByteBuffer(bytes: [UInt8](repeating: 1, count: 84))
        t.slice(data.getSlice(at: 0, length: 40)!, at: 0)
        t.slice(data.getSlice(at: 40, length: 44)!, at: 40)
        let done = CompletedRequest(id: 1, request: read.header, requestTime: 0, replyTime: 0, outcome: .replied, error: .ok,
                                    errorMessage: nil, chunks: 1, dataBytes: 64, holeBytes: 0, extents: [])
        guard case .unknown(let why)? = t.completed(done).data else { Issue.record("data outside the request accepted"); return }
        #expect(why.contains("outside"))
    }
}
