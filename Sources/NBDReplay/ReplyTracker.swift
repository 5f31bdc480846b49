import NBDConversation
import NBDProtocol
import NIOCore

/// Follows the replies of one connection's decoder events and reduces each finished
/// request to a `ReplyOutcome`: its error, its READ data digest, its extents. The
/// recorded side (from a capture) and the replayed side (from the upstream) use the same
/// tracker, so the two outcomes are computed alike.
///
/// Feed it in three steps per chunk of bytes: `announce` the chunk's events (payload
/// spans and holes), `slice` the chunk's server bytes, then `completed` for each
/// completion among the events: the data of a reply is then whole before it is summed up.
struct ReplyTracker {
    struct Pending {
        var id: UInt64
        var command: NBDCommand
        var offset: UInt64
        var length: UInt64
    }
    /// Requests in flight by cookie (the last one sent, should a client reuse a cookie).
    var byCookie: [UInt64: Pending] = [:]
    var assemblers: [UInt64: ReadAssembler] = [:]
    var slicer = PayloadSlicer<(id: UInt64, position: UInt64)>()

    mutating func request(_ r: RequestEvent) {
        byCookie[r.header.cookie] = Pending(id: r.id, command: r.header.command, offset: r.header.offset, length: r.effectLength)
        if case .read = r.header.command { assemblers[r.id] = ReadAssembler(length: r.header.length) }
    }

    /// Step 1: the server-side events of one chunk. Registers where READ data lies.
    mutating func announce(_ events: [ConversationEvent]) {
        var last: ConversationEvent.Kind?
        for e in events where e.direction == .serverToClient {
            switch e.kind {
            case .payload(let cookie, let span):
                guard let p = byCookie[cookie], case .read = p.command else { break }
                // The message just before says where in the READ this data goes.
                if case .simpleReply? = last {
                    slicer.add(span, (p.id, 0))
                } else if case .replyChunk(_, .offsetData(let offset, _))? = last {
                    slicer.add(span, (p.id, offset &- p.offset))
                }
            case .replyChunk(let h, .offsetHole(let offset, let length)):
                if let p = byCookie[h.cookie] { assemblers[p.id]?.add(.zeros(UInt64(length)), at: offset &- p.offset) }
            case .serverGreeting, .clientFlags, .option, .optionReply, .exportNameReply, .transmissionStarted, .request,
                 .simpleReply, .replyChunk, .completed, .tlsStarted, .opaque, .violation, .compliance, .gap, .skipped, .closed:
                break
            }
            last = e.kind
        }
    }

    /// Step 2: server bytes starting at stream offset `at`.
    mutating func slice(_ bytes: ByteBuffer, at offset: UInt64) {
        slicer.slice(bytes, at: offset) { tag, inSpan, part in
            // Wrapping: a chunk offset before the request's wraps `position`, which the
            // assembler then refuses as outside the request.
            assemblers[tag.id]?.add(.data(part), at: tag.position &+ inSpan)
        }
    }

    /// Server bytes missing from the capture.
    mutating func gap(at offset: UInt64, length: UInt64) {
        slicer.missing(at: offset, length: length) { tag, _, n in
            assemblers[tag.id]?.lose("\(n) bytes of the reply data are missing from the capture")
        }
    }

    /// The server's stream ended.
    mutating func closeServerStream() {
        slicer.close { tag in assemblers[tag.id]?.lose("the stream ended inside the reply data") }
    }

    /// Step 3: a request finished.
    mutating func completed(_ c: CompletedRequest) -> ReplyOutcome {
        if let p = byCookie[c.request.cookie], p.id == c.id { byCookie[c.request.cookie] = nil }
        let assembler = assemblers.removeValue(forKey: c.id)
        switch c.outcome {
        case .abandoned: return ReplyOutcome(status: .abandoned)
        case .noReply: return ReplyOutcome(status: .noReply)
        case .replied: break
        }
        var outcome = ReplyOutcome(status: .replied(c.error))
        guard c.error == .ok else { return outcome }
        switch c.request.command {
        case .read:
            outcome.data = assembler?.summary ?? .unknown("the request was not seen")
        case .blockStatus:
            for e in c.extents {
                outcome.extents[e.contextName ?? "context \(e.contextID)", default: []] += e.descriptors
            }
        case .write, .disc, .flush, .trim, .cache, .writeZeroes, .resize, .unknown:
            break
        }
        return outcome
    }
}
