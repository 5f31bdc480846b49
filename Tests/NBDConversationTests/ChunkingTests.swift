import NBDConversation
import NBDProtocol
import NIOCore
import Testing

let recordedSessions = ["nbdsh-all-structured", "nbdsh-all-simple", "qemu-img-convert", "oldstyle", "error-filter"]

/// Scenario conversations, reused by the split-point and fuzz tests.
func scenarios() -> [Transcript] {
    var out: [Transcript] = []
    var a = ConversationBuilder()
    a.negotiate()
    a.request(.write, cookie: 1, offset: 0, length: 600, flags: .fua, payload: Array(repeating: 3, count: 600))
    a.simpleReply(cookie: 1)
    a.request(.read, cookie: 2, offset: 0, length: 600)
    a.request(.blockStatus, cookie: 3, offset: 0, length: 4096)
    a.chunk(cookie: 2, .offsetData(offset: 0, dataLength: 600), type: .offsetData, done: false, data: Array(repeating: 3, count: 600))
    a.chunk(cookie: 3, .blockStatus(contextID: 1, descriptors: [BlockDescriptor(length: 4096, status: 0)]), type: .blockStatus, done: true)
    a.chunk(cookie: 2, .errorOffset(error: .eio, message: "bad sector", offset: 100), type: .errorOffset, done: true)
    a.request(.writeZeroes, cookie: 4, offset: 0, length: 4096, flags: [.fastZero, .noHole])
    a.chunk(cookie: 4, .error(error: .enotsup, message: ""), type: .error, done: true)
    a.request(.disc, cookie: 5)
    out.append(a.transcript)

    var b = ConversationBuilder()
    b.negotiate(structured: false)
    b.request(.read, cookie: 1, offset: 512, length: 300)
    b.simpleReply(cookie: 1, data: Array(repeating: 9, count: 300))
    b.request(.read, cookie: 2, offset: 512, length: 300)
    b.simpleReply(cookie: 2, error: .eio)
    b.request(.trim, cookie: 3, offset: 0, length: 300)
    b.simpleReply(cookie: 3)
    out.append(b.transcript)

    var c = ConversationBuilder()
    c.negotiate(flags: TransmissionFlags(rawValue: 0x1ded), extended: true)
    c.request(.write, cookie: 7, offset: 0, length: 40, flags: .payloadLen, extended: true, payload: Array(repeating: 1, count: 40))
    c.chunk(cookie: 7, .none, type: .none, done: true, extended: true)
    c.request(.read, cookie: 8, offset: 0, length: 40, extended: true)
    c.chunk(cookie: 8, .offsetData(offset: 0, dataLength: 40), type: .offsetData, done: true, extended: true, data: Array(repeating: 1, count: 40))
    out.append(c.transcript)

    var d = ConversationBuilder()
    d.fixedNewstyle(noZeroes: false)
    d.option(.list)
    d.reply(.list, .server, .server(name: "x", description: "y"))
    d.reply(.list, .ack)
    d.option(.exportName) { $0.writeString("x") }
    d.server { ExportNameReply(size: 8192, flags: [.hasFlags, .readOnly], zeroesOmitted: false).write(to: &$0) }
    d.request(.read, cookie: 1, offset: 0, length: 16)
    d.simpleReply(cookie: 1, data: Array(repeating: 4, count: 16))
    out.append(d.transcript)
    return out
}

/// Events without their times, for comparisons where merging chunks moves times.
func timeless(_ events: [ConversationEvent]) -> [ConversationEvent] {
    events.map { var e = $0; e.time = 0
        if case .request(var r) = e.kind { r.time = 0; e.kind = .request(r) }
        if case .completed(var c) = e.kind { c.requestTime = 0; c.replyTime = 0; e.kind = .completed(c) }
        return e }
}

struct ChunkingTests {
    /// Seeded property: random splits of every record give the same events, times included.
    @Test(arguments: recordedSessions)
    func randomSplitsGiveTheSameEvents(_ name: String) throws {
        let t = try loadTranscript(name)
        let baseline = decode(t)
        #expect(baseline.requests.count > 0)
        for seed in UInt64(1)...20 {
            var rng = SeededRandom(seed: seed)
            let ev = decode(t.records) { _, n in
                guard n > 1 else { return [] }
                return (0..<Int.random(in: 0...6, using: &rng)).map { _ in Int.random(in: 1..<n, using: &rng) }.sorted()
            }
            for d in [StreamDirection.clientToServer, .serverToClient] {
                #expect(perDirection(ev, d) == perDirection(baseline, d), "seed \(seed) \(d)")
            }
        }
    }

    /// Seeded property: merging neighbouring records of one direction and re-splitting
    /// changes only times (which follow the chunk that completes a message).
    @Test(arguments: recordedSessions)
    func randomMergesGiveTheSameEvents(_ name: String) throws {
        let t = try loadTranscript(name)
        let baseline = timeless(decode(t))
        for seed in UInt64(1)...10 {
            var rng = SeededRandom(seed: seed)
            var merged: [Transcript.Record] = []
            for r in t.records {
                if var last = merged.last, last.direction == r.direction, Bool.random(using: &rng) {
                    var b = r.bytes
                    last.bytes.writeBuffer(&b)
                    last.time = r.time
                    merged[merged.count - 1] = last
                } else {
                    merged.append(r)
                }
            }
            let ev = timeless(decode(merged) { _, n in n > 1 ? [Int.random(in: 1..<n, using: &rng)] : [] })
            for d in [StreamDirection.clientToServer, .serverToClient] {
                #expect(perDirection(ev, d) == perDirection(baseline, d), "seed \(seed)")
            }
        }
    }

    @Test func byteAtATime() throws {
        for t in try recordedSessions.prefix(2).map(loadTranscript) + scenarios() {
            let baseline = decode(t)
            let ev = decode(t.records) { _, n in Array(0..<n) }
            #expect(ev == baseline)
        }
    }

    /// Every split point of every message: each record cut in two at every position.
    @Test func everySplitPointOfEveryMessage() {
        for t in scenarios() {
            let baseline = decode(t)
            #expect(baseline.violations.count <= 1)
            for (i, r) in t.records.enumerated() {
                for cut in 1..<max(1, r.bytes.readableBytes) {
                    let ev = decode(t.records) { j, _ in j == i ? [cut] : [] }
                    #expect(ev == baseline, "record \(i) cut at \(cut)")
                }
            }
        }
    }
}
