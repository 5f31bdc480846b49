import NBDConversation
import NBDProtocol
import NBDReport
import NIOCore
import Testing

/// Extended headers as qemu 10 frames them: NBD_CMD_WRITE without NBD_CMD_FLAG_PAYLOAD_LEN,
/// its data after the 32-byte header (qemu-nbd 10 serves it and traces
/// nbd_co_receive_ext_payload_compliance), against the extension text's "MUST set".
struct ExtendedFramingTests {
    /// The requests of a qemu-io 10 session (write, write zeroes, read, trim, flush) with
    /// qemu-nbd 10's replies, in extended chunks.
    static func qemu10Session() -> ConversationBuilder {
        var c = ConversationBuilder()
        c.negotiate(size: 64 << 20, flags: TransmissionFlags(rawValue: 0x1ced), extended: true)
        c.request(.write, cookie: 1, offset: 0, length: 4096, flags: .fua, extended: true, payload: Array(repeating: 0x55, count: 4096))
        c.chunk(cookie: 1, .none, type: .none, done: true, extended: true)
        c.request(.writeZeroes, cookie: 1, offset: 65536, length: 65536, flags: [.fua, .noHole], extended: true)
        c.chunk(cookie: 1, .none, type: .none, done: true, extended: true)
        c.request(.read, cookie: 1, offset: 0, length: 4096, extended: true)
        c.chunk(cookie: 1, .offsetData(offset: 0, dataLength: 4096), type: .offsetData, done: true, extended: true,
                data: Array(repeating: 0x55, count: 4096))
        c.request(.write, cookie: 2, offset: 8192, length: 512, extended: true, payload: Array(repeating: 0x66, count: 512))
        c.request(.trim, cookie: 3, offset: 1 << 20, length: 1 << 20, extended: true)
        c.chunk(cookie: 3, .none, type: .none, done: true, extended: true)
        c.chunk(cookie: 2, .none, type: .none, done: true, extended: true)
        c.request(.flush, cookie: 1, extended: true)
        c.chunk(cookie: 1, .none, type: .none, done: true, extended: true)
        c.request(.disc, cookie: 0, extended: true)
        return c
    }

    @Test func writeWithoutPayloadLenCarriesItsData() {
        let ev = decode(Self.qemu10Session().transcript)
        #expect(ev.violations.isEmpty, "\(ev.violations)")
        #expect(ev.requests.map(\.header.command) == [.write, .writeZeroes, .read, .write, .trim, .flush, .disc])
        #expect(ev.completed.map(\.request.command) == [.write, .writeZeroes, .read, .trim, .write, .flush])
        #expect(ev.completed.allSatisfy { $0.error == .ok && $0.outcome == .replied })
        let payloads = ev.compactMap { e -> UInt64? in
            if case .payload(_, let span) = e.kind, span.direction == .clientToServer { return span.length } else { return nil }
        }
        #expect(payloads == [4096, 512])
        let notes = ev.compactMap { e -> ComplianceNote? in if case .compliance(let n) = e.kind { return n } else { return nil } }
        #expect(notes.map(\.code) == [.writeWithoutPayloadLen, .writeWithoutPayloadLen])
        #expect(notes.map(\.occurrence) == [1, 2])
    }

    /// The same session at every split point of every record decodes to the same events.
    @Test func everySplitPoint() {
        let records = Self.qemu10Session().transcript.records
        let whole = decode(records) { _, _ in [] }
        for (index, record) in records.enumerated() {
            for cut in 1..<record.bytes.readableBytes {
                let split = decode(records) { i, _ in i == index ? [cut] : [] }
                #expect(split.map(\.kind) == whole.map(\.kind), "record \(index) split at \(cut)")
                if split.map(\.kind) != whole.map(\.kind) { return }
            }
        }
    }

    /// The log says it once per connection; the statistics count every WRITE.
    @Test func logOnceStatisticsEveryTime() {
        var tap = ConversationTap(connection: 1, logFormat: .nbdkit)
        var text: [UInt8] = []
        for r in Self.qemu10Session().transcript.records { tap.feed(r.direction, r.bytes, at: r.time, logText: &text) }
        tap.close(at: 0, logText: &text)
        let log = String(decoding: text, as: UTF8.self)
        let lines = log.split(separator: "\n").filter { $0.contains(" Compliance ") }
        #expect(lines.count == 1)
        #expect(lines.first?.hasSuffix(#"Compliance from=client code=write_without_payload_len seen_in="qemu 10 clients; qemu-nbd 10 accepts it" reason="NBD_CMD_WRITE without PAYLOAD_LEN under extended headers; its length 0x1000 is taken as the payload length""#) == true, "\(lines)")
        #expect(!log.contains("Violation"))
        #expect(tap.stats.compliance == ["write_without_payload_len": 2])
        #expect(tap.stats.violations.isEmpty)
        #expect(tap.stats[command: "WRITE"]?.requests == 2)
        #expect(StatsFormatter.table(tap.stats).contains("compliance notes: write_without_payload_len=2"))
    }

    /// With PAYLOAD_LEN, as the spec text has it, the same bytes frame the same way and earn
    /// no note; a compact WRITE never earns one.
    @Test func compliantWritesEarnNoNote() {
        var c = ConversationBuilder()
        c.negotiate(size: 1 << 20, flags: TransmissionFlags(rawValue: 0x1ced), extended: true)
        c.request(.write, cookie: 1, offset: 0, length: 16, flags: .payloadLen, extended: true, payload: Array(repeating: 1, count: 16))
        c.chunk(cookie: 1, .none, type: .none, done: true, extended: true)
        var compact = ConversationBuilder()
        compact.negotiate(size: 1 << 20, flags: TransmissionFlags(rawValue: 0xced))
        compact.request(.write, cookie: 1, offset: 0, length: 16, payload: Array(repeating: 1, count: 16))
        compact.simpleReply(cookie: 1)
        for t in [c.transcript, compact.transcript] {
            let ev = decode(t)
            #expect(ev.violations.isEmpty)
            #expect(!ev.contains { if case .compliance = $0.kind { return true } else { return false } })
            #expect(ev.completed.count == 1)
        }
    }
}

/// A reply whose data stops short: the request is abandoned, not answered.
struct CutReplyDataTests {
    func cut(_ build: (inout ConversationBuilder) -> Void, keep: Int) -> [ConversationEvent] {
        var c = ConversationBuilder()
        build(&c)
        var records = c.transcript.records
        let last = records.removeLast()
        records.append(Transcript.Record(direction: last.direction, time: last.time, bytes: last.bytes.getSlice(at: 0, length: keep)!))
        return decode(Transcript(records: records))
    }

    @Test func simpleReplyReadCutOff() {
        let ev = cut({ c in
            c.negotiate(structured: false)
            c.request(.read, cookie: 1, offset: 0, length: 4096)
            c.simpleReply(cookie: 1, data: Array(repeating: 7, count: 4096))
        }, keep: 16 + 2048)
        #expect(ev.completed.map(\.outcome) == [.abandoned])
        #expect(ev.violations.map(\.code) == [.truncated])
    }

    @Test func offsetDataChunkCutOff() {
        let ev = cut({ c in
            c.negotiate()
            c.request(.read, cookie: 1, offset: 0, length: 4096)
            c.chunk(cookie: 1, .offsetData(offset: 0, dataLength: 4096), type: .offsetData, done: true, data: Array(repeating: 7, count: 4096))
        }, keep: 20 + 8 + 100)
        #expect(ev.completed.map(\.outcome) == [.abandoned])
    }

    /// Whole data: answered, reported once the data has passed (after its payload span).
    @Test func wholeDataCompletesAfterItsPayload() {
        var c = ConversationBuilder()
        c.negotiate(structured: false)
        c.request(.read, cookie: 1, offset: 0, length: 4096)
        c.simpleReply(cookie: 1, data: Array(repeating: 7, count: 4096))
        let ev = decode(records(c), splitting: { i, n in i == records(c).count - 1 ? Array(stride(from: 1, to: n, by: 512)) : [] })
        let kinds = perDirection(ev, .serverToClient).compactMap { e -> String? in
            switch e.kind {
            case .payload: return "payload"
            case .completed(let done): return done.outcome == .replied ? "replied" : "other"
            default: return nil
            }
        }
        #expect(kinds == ["payload", "replied"])
    }

    func records(_ c: ConversationBuilder) -> [Transcript.Record] { c.transcript.records }
}

/// Found by the fuzz targets (Fuzz/Corpus/*/regress-*): lengths from the network near
/// 2^64 must not trap whoever adds or converts them.
struct HugeLengthTests {
    @Test func extendedWriteAndBlockStatusOfMaximalLength() {
        for command in [NBDCommand.write, .blockStatus] {
            var c = ConversationBuilder()
            c.negotiate(size: 1 << 20, flags: TransmissionFlags(rawValue: 0x1ced), extended: true)
            c.request(command, cookie: 1, offset: 0, length: .max, flags: command == .blockStatus ? .payloadLen : [], extended: true,
                      payload: Array(repeating: 0, count: 100))
            let ev = decode(c.transcript)
            #expect(ev.requests.count == 1)
            let spans = ev.compactMap { e -> StreamSpan? in if case .payload(_, let s) = e.kind { return s } else { return nil } }
            #expect(spans.count == 1 && spans[0].length == .max && spans[0].end == .max)
            #expect(ev.completed.map(\.outcome) == [.abandoned])
        }
    }
}

/// The decoder's tables are bounded: a connection with more requests in flight than the
/// limit is a fatal violation, not a bigger table.
struct InFlightLimitTests {
    @Test func oneRequestTooManyIsFatal() {
        var c = ConversationBuilder()
        c.negotiate()
        for cookie in 1...5 { c.request(.flush, cookie: UInt64(cookie % 3)) }  // duplicates count too
        var limits = DecoderLimits()
        limits.maxInFlight = 4
        var decoder = ConversationDecoder(limits: limits)
        var events: [ConversationEvent] = []
        for r in c.transcript.records { decoder.feed(r.direction, r.bytes, at: r.time, into: &events) }
        let fatal = events.violations.filter(\.fatal)
        #expect(fatal.map(\.code) == [.tooLarge] && fatal.first?.reason == "more than 4 requests in flight", "\(events.violations)")
        #expect(events.requests.count == 5)
    }
}
