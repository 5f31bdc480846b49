import NBDConversation
import NBDProtocol
import NIOCore

/// Turns one recorded connection's bytes and decoder events into the workload the
/// replayer sends again: what the client negotiated, each request with its WRITE data
/// (copied out of the capture), and each recorded reply reduced to an outcome. Pure: the
/// capture reader feeds it, the replayer drains `items`.
public struct WorkloadExtractor {
    public let connection: Int
    /// Items ready, in capture order; the caller takes them.
    public var items: [WorkloadItem] = []
    var negotiation = RecordedNegotiation()
    var negotiationDone = false
    var replies = ReplyTracker()
    /// Requests in flight in the recording, for each request's `depth`.
    var inFlight = 0
    /// A WRITE whose data is still arriving; requests after it wait (they follow it on the
    /// wire too).
    var heldWrite: RecordedRequest?
    var writeSlicer = PayloadSlicer<UInt64>()
    /// WRITE data being copied out of the capture, by request id, and how much of it the
    /// capture lacks.
    var writeData: [UInt64: (bytes: ByteBuffer, missing: [Range<UInt64>])] = [:]
    /// WRITE payloads larger than this are not held: such a request is reported, not sent
    /// (servers refuse more than 32 MiB).
    public static let maxWritePayload: UInt64 = 64 << 20

    public init(connection: Int, midSession: Bool) {
        self.connection = connection
        negotiation.known = !midSession
    }

    /// Bytes of one direction starting at `offset`, and the events they produced.
    public mutating func fed(_ d: StreamDirection, at offset: UInt64, _ bytes: ByteBuffer, _ events: [ConversationEvent]) {
        announce(events)
        switch d {
        case .clientToServer:
            writeSlicer.slice(bytes, at: offset) { id, _, part in writeData[id]?.bytes.writeImmutableBuffer(part) }
        case .serverToClient:
            replies.slice(bytes, at: offset)
        }
        handle(events)
        releaseWrite(force: false)
    }

    public mutating func gap(_ d: StreamDirection, at offset: UInt64, length: UInt64, _ events: [ConversationEvent]) {
        switch d {
        case .clientToServer:
            writeSlicer.missing(at: offset, length: length) { id, at, n in
                // Zeroes keep the bytes after the hole in place; the range says they are not real.
                writeData[id]?.bytes.writeRepeatingByte(0, count: Int(n))
                writeData[id]?.missing.append(at..<at + n)
            }
        case .serverToClient:
            replies.gap(at: offset, length: length)
        }
        handle(events)
        releaseWrite(force: false)
    }

    /// A direction's end, with its events.
    public mutating func ended(_ events: [ConversationEvent]) {
        for e in events where e.kind == .closed {
            switch e.direction {
            case .clientToServer:
                writeSlicer.close { _ in }
            case .serverToClient:
                replies.closeServerStream()
            }
        }
        handle(events)
        releaseWrite(force: events.contains { $0.direction == .clientToServer && $0.kind == .closed })
    }

    public mutating func closed(at time: UInt64) {
        releaseWrite(force: true)
        if !negotiationDone { emitNegotiation() }
        items.append(.end(time: time))
    }

    // MARK: -

    mutating func announce(_ events: [ConversationEvent]) {
        replies.announce(events)
        var last: ConversationEvent.Kind?
        for e in events where e.direction == .clientToServer {
            if case .payload(_, let span) = e.kind, case .request(let r)? = last, case .write = r.header.command,
               r.header.length <= Self.maxWritePayload {
                writeSlicer.add(span, r.id)
                writeData[r.id] = (ByteBufferAllocator().buffer(capacity: Int(min(r.header.length, 1 << 20))), [])
            }
            last = e.kind
        }
    }

    mutating func handle(_ events: [ConversationEvent]) {
        for e in events {
            switch e.kind {
            case .serverGreeting(let g):
                if case .oldstyle = g { negotiation.oldstyle = true }
            case .clientFlags(let f):
                negotiation.clientFlags = f
            case .option(let h, let data):
                negotiation.options.append(RecordedOption(header: h, data: data))
            case .optionReply(let h, let data, let final):
                guard let i = negotiation.options.lastIndex(where: { $0.header.option == h.option }) else { break }
                switch data {
                case .metaContext(_, let name): negotiation.options[i].names.append(name)
                case .server(let name, _): negotiation.options[i].names.append(name)
                case .ack, .info, .error, .unknown: break
                }
                if final { negotiation.options[i].finalReply = h.type }
            case .exportNameReply:
                break
            case .transmissionStarted(let info):
                negotiation.info = info
                emitNegotiation()
            case .tlsStarted:
                negotiation.tls = true
                emitNegotiation()
            case .request(let r):
                request(r, e.time)
            case .completed(let c):
                inFlight = max(0, inFlight - 1)
                items.append(.outcome(id: c.id, replies.completed(c)))
            case .skipped(let n):
                items.append(.skipped(bytes: n, direction: e.direction))
            case .simpleReply, .replyChunk, .payload, .opaque, .violation, .compliance, .gap, .closed:
                break
            }
        }
    }

    mutating func request(_ r: RequestEvent, _ time: UInt64) {
        if !negotiationDone {
            // Mid-session: nothing of the handshake was seen; what the requests show stands in.
            negotiation.extendedRequests = r.header.extended
            emitNegotiation()
        }
        releaseWrite(force: true)
        if case .disc = r.header.command {
            // No reply comes (nor a completion from the decoder).
            items.append(.request(RecordedRequest(connection: connection, id: r.id, header: r.header, effectLength: r.effectLength,
                                                  depth: inFlight + 1, time: time)))
            items.append(.outcome(id: r.id, ReplyOutcome(status: .noReply)))
            return
        }
        replies.request(r)
        inFlight += 1
        var names: [String]?
        if let ids = r.contextFilter {
            let known = negotiation.info?.metaContexts ?? [:]
            names = ids.map { known[$0] ?? "context \($0)" }
        }
        var recorded = RecordedRequest(connection: connection, id: r.id, header: r.header, effectLength: r.effectLength,
                                       contextFilter: names, depth: inFlight, time: time)
        if case .write = r.header.command, r.header.length > 0 {
            if writeData[r.id] == nil {
                recorded.missing = [0..<r.header.length]
            } else {
                heldWrite = recorded
                return
            }
        }
        items.append(.request(recorded))
    }

    /// Emits the held WRITE once its data is all there (or, `force`, as it stands).
    mutating func releaseWrite(force: Bool) {
        guard var w = heldWrite, var data = writeData[w.id] else { return }
        let have = UInt64(data.bytes.readableBytes)
        guard force || have >= w.header.length else { return }
        if have < w.header.length {
            // The capture (or the client) stopped inside the data.
            data.missing.append(have..<w.header.length)
            data.bytes.writeRepeatingByte(0, count: Int(w.header.length - have))
        }
        w.payload = data.bytes
        w.missing = data.missing
        heldWrite = nil
        writeData[w.id] = nil
        items.append(.request(w))
    }

    mutating func emitNegotiation() {
        guard !negotiationDone else { return }
        negotiationDone = true
        items.append(.negotiation(negotiation))
    }
}
