import NBDConversation
import NBDProtocol
import NIOCore

/// Builds synthetic conversations message by message, for the scenarios no real peer
/// here produces (extended headers, violations, STARTTLS) and for split-point tests.
/// Messages are encoded with NBDProtocol's writers, whose bytes the NBDProtocol tests
/// check against hand-written spec vectors.
struct ConversationBuilder {
    var records: [Transcript.Record] = []
    var time: UInt64 = 1_000_000_000

    mutating func add(_ d: StreamDirection, _ body: (inout ByteBuffer) -> Void) {
        var b = ByteBufferAllocator().buffer(capacity: 64)
        body(&b)
        time += 1000
        records.append(Transcript.Record(direction: d, time: time, bytes: b))
    }
    mutating func client(_ body: (inout ByteBuffer) -> Void) { add(.clientToServer, body) }
    mutating func server(_ body: (inout ByteBuffer) -> Void) { add(.serverToClient, body) }

    /// Fixed newstyle greeting with NO_ZEROES, client flags accepting both.
    mutating func fixedNewstyle(noZeroes: Bool = true) {
        server { ServerGreeting.newstyle(noZeroes ? [.fixedNewstyle, .noZeroes] : [.fixedNewstyle]).write(to: &$0) }
        client { $0.writeInteger((noZeroes ? [.fixedNewstyle, .noZeroes] : ClientFlags.fixedNewstyle).rawValue) }
    }

    mutating func option(_ o: NBDOption, _ data: ((inout ByteBuffer) -> Void)? = nil) {
        client { b in
            var d = ByteBufferAllocator().buffer(capacity: 16)
            data?(&d)
            OptionHeader(option: o, dataLength: UInt32(d.readableBytes)).write(to: &b)
            b.writeBuffer(&d)
        }
    }

    mutating func reply(_ o: NBDOption, _ type: OptionReplyType, _ data: OptionReplyData = .ack) {
        server { b in
            var d = ByteBufferAllocator().buffer(capacity: 16)
            data.write(to: &d)
            OptionReplyHeader(option: o, type: type, dataLength: UInt32(d.readableBytes)).write(to: &b)
            b.writeBuffer(&d)
        }
    }

    /// STRUCTURED_REPLY (or EXTENDED_HEADERS), SET_META_CONTEXT base:allocation, GO.
    mutating func negotiate(size: UInt64 = 1 << 20, flags: TransmissionFlags = TransmissionFlags(rawValue: 0xded),
                            structured: Bool = true, extended: Bool = false) {
        fixedNewstyle()
        if extended {
            option(.extendedHeaders)
            reply(.extendedHeaders, .ack)
        } else if structured {
            option(.structuredReply)
            reply(.structuredReply, .ack)
        }
        if structured || extended {
            option(.setMetaContext) { MetaContextRequest(exportName: "", queries: ["base:allocation"]).write(to: &$0) }
            reply(.setMetaContext, .metaContext, .metaContext(id: 1, name: "base:allocation"))
            reply(.setMetaContext, .ack)
        }
        option(.go) { InfoRequest(exportName: "", requests: [.blockSize]).write(to: &$0) }
        reply(.go, .info, .info(.export(size: size, flags: flags)))
        reply(.go, .ack)
    }

    mutating func request(_ c: NBDCommand, cookie: UInt64, offset: UInt64 = 0, length: UInt64 = 0,
                          flags: CommandFlags = [], extended: Bool = false, payload: [UInt8]? = nil) {
        client { b in
            RequestHeader(flags: flags, command: c, cookie: cookie, offset: offset, length: length, extended: extended).write(to: &b)
            if let payload { b.writeBytes(payload) }
        }
    }

    mutating func simpleReply(cookie: UInt64, error: ErrorValue = .ok, data: [UInt8]? = nil) {
        server { b in
            SimpleReplyHeader(error: error, cookie: cookie).write(to: &b)
            if let data { b.writeBytes(data) }
        }
    }

    mutating func chunk(cookie: UInt64, _ payload: ChunkPayload, type: ReplyChunkType, done: Bool,
                        extended: Bool = false, offset: UInt64 = 0, data: [UInt8] = []) {
        server { b in
            ReplyChunkHeader(flags: done ? .done : [], type: type, cookie: cookie, offset: offset,
                             length: payload.wireLength, extended: extended).write(to: &b)
            payload.write(to: &b)
            b.writeBytes(data)
        }
    }

    var transcript: Transcript { Transcript(records: records) }
}

/// Feeds records split at the given byte positions (per record), for chunking tests.
func decode(_ records: [Transcript.Record], splitting: (Int, Int) -> [Int]) -> [ConversationEvent] {
    var decoder = ConversationDecoder()
    var events: [ConversationEvent] = []
    for (i, r) in records.enumerated() {
        var b = r.bytes
        var last = 0
        for cut in splitting(i, r.bytes.readableBytes) + [r.bytes.readableBytes] where cut > last {
            decoder.feed(r.direction, b.readSlice(length: cut - last)!, at: r.time, into: &events)
            last = cut
        }
        _ = b
    }
    let end = records.last?.time ?? 0
    decoder.finish(.clientToServer, at: end, into: &events)
    decoder.finish(.serverToClient, at: end, into: &events)
    return events
}

func perDirection(_ events: [ConversationEvent], _ d: StreamDirection) -> [ConversationEvent] {
    events.filter { $0.direction == d }
}
