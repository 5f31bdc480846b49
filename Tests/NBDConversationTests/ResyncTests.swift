import NBDConversation
import NBDProtocol
import NIOCore
import Testing

/// Decoding across holes: a capture started mid-session, and bytes missing from one.
struct ResyncTests {
    func requestKeys(_ ev: [ConversationEvent]) -> [String] {
        ev.requests.map { "\($0.header.command.name) \($0.header.offset) \($0.header.length) \($0.header.flags.rawValue) \($0.header.cookie)" }
    }

    /// The stream offsets where each request starts in the client's stream.
    func requestOffsets(_ ev: [ConversationEvent]) -> [UInt64] {
        ev.compactMap { if case .request = $0.kind { return $0.streamOffset } else { return nil } }
    }

    /// Cuts the first `c` client bytes and `s` server bytes, as a capture that started late.
    func dropPrefix(_ t: Transcript, client c: Int, server s: Int) -> [Transcript.Record] {
        var left: [StreamDirection: Int] = [.clientToServer: c, .serverToClient: s]
        var out: [Transcript.Record] = []
        for var r in t.records {
            let n = min(left[r.direction]!, r.bytes.readableBytes)
            left[r.direction]! -= n
            r.bytes.moveReaderIndex(forwardBy: n)
            if r.bytes.readableBytes > 0 { out.append(r) }
        }
        return out
    }

    func decodeMid(_ records: [Transcript.Record]) -> [ConversationEvent] {
        var d = ConversationDecoder(midSession: true)
        var ev: [ConversationEvent] = []
        for r in records { d.feed(r.direction, r.bytes, at: r.time, into: &ev) }
        d.finish(.clientToServer, at: 0, into: &ev)
        d.finish(.serverToClient, at: 0, into: &ev)
        return ev
    }

    @Test(arguments: ["nbdsh-all-structured", "nbdsh-all-simple", "qemu-img-convert"])
    func captureStartedMidSession(_ name: String) throws {
        let t = try loadTranscript(name)
        let baseline = decode(t)
        let offsets = requestOffsets(baseline)
        let keys = requestKeys(baseline)
        // Start inside the third request's header (a few bytes into it) and mid-reply.
        let cut = Int(offsets[2]) + 3
        let serverCut = Int(baseline.first { if case .completed = $0.kind { return true } else { return false } }!.streamOffset) + 5
        let ev = decodeMid(dropPrefix(t, client: cut, server: serverCut))
        let got = requestKeys(ev)
        // Every request from the fourth on is found, in order; nothing is invented.
        #expect(got == Array(keys[3...]))
        #expect(ev.violations.filter(\.fatal).isEmpty)
        // Replies to requests seen are matched with their errors.
        let baseErrors = Dictionary(baseline.completed.map { ($0.request.cookie, $0.error) }, uniquingKeysWith: { a, _ in a })
        for c in ev.completed where c.outcome == .replied {
            #expect(baseErrors[c.request.cookie] == c.error)
        }
        #expect(ev.completed.filter { $0.outcome == .replied }.count >= got.count - 1)
    }

    /// A hole inside a WRITE payload loses no framing at all.
    @Test func gapInsidePayloadKeepsFraming() throws {
        let t = try loadTranscript("qemu-img-convert")
        let baseline = decode(t)
        var d = ConversationDecoder()
        var ev: [ConversationEvent] = []
        let firstWrite = baseline.first { if case .payload(_, let s) = $0.kind { return s.direction == .clientToServer && s.length > 1000 } else { return false } }!
        guard case .payload(_, let span) = firstWrite.kind else { return }
        var seen: UInt64 = 0
        for r in t.records {
            guard r.direction == .clientToServer else { d.feed(r.direction, r.bytes, at: r.time, into: &ev); continue }
            // Remove 100 bytes starting 10 bytes into the payload.
            let holeStart = span.offset + 10, holeEnd = holeStart + 100
            let start = seen, end = seen + UInt64(r.bytes.readableBytes)
            seen = end
            if end <= holeStart || start >= holeEnd { d.feed(r.direction, r.bytes, at: r.time, into: &ev); continue }
            var b = r.bytes
            let before = Int(max(0, Int64(holeStart) - Int64(start)))
            if before > 0 { d.feed(r.direction, b.readSlice(length: before)!, at: r.time, into: &ev) }
            let inHole = Int(min(end, holeEnd) - max(start, holeStart))
            b.moveReaderIndex(forwardBy: inHole)
            d.gap(.clientToServer, length: UInt64(inHole), at: r.time, into: &ev)
            if b.readableBytes > 0 { d.feed(r.direction, b, at: r.time, into: &ev) }
        }
        d.finish(.clientToServer, at: 0, into: &ev)
        d.finish(.serverToClient, at: 0, into: &ev)
        #expect(requestKeys(ev) == requestKeys(baseline))
        #expect(ev.contains { $0.kind == .gap(missing: 100) })
        #expect(!ev.contains { if case .skipped = $0.kind { return true } else { return false } })
    }

    /// A hole that ends exactly where a READ's data ends (what a capture cut at a snaplen
    /// gives when a payload's last bytes are not recorded): the READ is answered as when
    /// every byte is there, on simple, structured and extended replies alike.
    @Test(arguments: ["nbdsh-all-simple", "nbdsh-all-structured", "qemu10-io-all"])
    func gapEndingAtAPayloadsEndStillAnswersTheRead(_ name: String) throws {
        let t = try loadTranscript(name)
        let baseline = decode(t)
        let holes: [(start: UInt64, end: UInt64)] = baseline.compactMap { e in
            guard case .payload(_, let span) = e.kind, span.direction == .serverToClient, span.length > 0 else { return nil }
            return (span.end - min(span.length, 7), span.end)
        }
        try #require(!holes.isEmpty, "\(name) has no reply data")
        var d = ConversationDecoder()
        var ev: [ConversationEvent] = []
        var seen: UInt64 = 0
        for r in t.records {
            guard r.direction == .serverToClient else { d.feed(r.direction, r.bytes, at: r.time, into: &ev); continue }
            var b = r.bytes
            var at = seen
            seen += UInt64(b.readableBytes)
            // Feed this record's bytes, leaving out the parts inside a hole.
            while b.readableBytes > 0 {
                if let h = holes.first(where: { $0.start <= at && at < $0.end }) {
                    let n = Int(min(h.end - at, UInt64(b.readableBytes)))
                    b.moveReaderIndex(forwardBy: n)
                    d.gap(.serverToClient, length: UInt64(n), at: r.time, into: &ev)
                    at += UInt64(n)
                } else {
                    let next = holes.first(where: { $0.start > at })?.start ?? UInt64.max
                    let n = Int(min(next - at, UInt64(b.readableBytes)))
                    d.feed(r.direction, b.readSlice(length: n)!, at: r.time, into: &ev)
                    at += UInt64(n)
                }
            }
        }
        d.finish(.clientToServer, at: 0, into: &ev)
        d.finish(.serverToClient, at: 0, into: &ev)
        func outcomes(_ ev: [ConversationEvent]) -> [String] {
            ev.compactMap { if case .completed(let c) = $0.kind { return "\(c.request.command.name) \(c.request.cookie) \(c.outcome) \(c.error)" } else { return nil } }
        }
        #expect(outcomes(ev) == outcomes(baseline))
        #expect(outcomes(ev).contains { $0.hasPrefix("READ") && $0.contains("replied") })
        #expect(ev.filter { if case .gap = $0.kind { return true } else { return false } }.count == holes.count)
    }

    /// A hole across request headers: decoding resumes at the next recognisable request,
    /// the requests found are a subset of the real ones, and the gap is reported.
    @Test(arguments: [0, 7, 29, 55])
    func gapAcrossHeadersResynchronises(_ extra: Int) throws {
        let t = try loadTranscript("nbdsh-all-simple")
        let baseline = decode(t)
        let offsets = requestOffsets(baseline)
        let keys = requestKeys(baseline)
        let holeStart = offsets[3] + UInt64(extra % 20), holeLength: UInt64 = 40
        var d = ConversationDecoder()
        var ev: [ConversationEvent] = []
        var seen: UInt64 = 0
        for r in t.records {
            guard r.direction == .clientToServer else { d.feed(r.direction, r.bytes, at: r.time, into: &ev); continue }
            let start = seen, end = seen + UInt64(r.bytes.readableBytes)
            seen = end
            let holeEnd = holeStart + holeLength
            if end <= holeStart || start >= holeEnd { d.feed(r.direction, r.bytes, at: r.time, into: &ev); continue }
            var b = r.bytes
            let before = Int(holeStart > start ? holeStart - start : 0)
            if before > 0 { d.feed(r.direction, b.readSlice(length: before)!, at: r.time, into: &ev) }
            let inHole = Int(min(end, holeEnd) - max(start, holeStart))
            b.moveReaderIndex(forwardBy: inHole)
            d.gap(.clientToServer, length: UInt64(inHole), at: r.time, into: &ev)
            if b.readableBytes > 0 { d.feed(r.direction, b, at: r.time, into: &ev) }
        }
        d.finish(.clientToServer, at: 0, into: &ev)
        d.finish(.serverToClient, at: 0, into: &ev)
        let got = requestKeys(ev)
        #expect(Set(got).isSubset(of: Set(keys)))
        #expect(got.count >= keys.count - 3)
        #expect(got.last == keys.last)
        #expect(ev.contains { if case .gap = $0.kind { return true } else { return false } })
    }
}
