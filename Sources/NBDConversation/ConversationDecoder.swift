import NBDProtocol
import NIOCore

/// The one NBD conversation decoder: fed the two byte streams of one connection in any
/// chunking, it emits typed events. It does no I/O and keeps no clock: the caller passes
/// the time each chunk arrived (live for the proxy, capture time for pcap), so live and
/// offline decoding of the same bytes agree.
///
/// Feeding must respect causality across directions (a reply after its request), which
/// any live relay or time-ordered capture does. Within that, chunk boundaries do not
/// change the events.
public struct ConversationDecoder {
    public let limits: DecoderLimits
    var phase: Phase = .greeting
    var c2s: DirectionState
    var s2c: DirectionState

    // Negotiation state.
    var style: TransmissionInfo.Style = .newstyle
    var serverHandshakeFlags: HandshakeFlags = []
    var clientFlags: ClientFlags = []
    var structuredReplies = false
    var extendedHeaders = false
    var metaContexts: [UInt32: String] = [:]
    /// After STARTTLS: whether the client's next bytes were judged (TLS, or plaintext
    /// relayed by a proxy that terminated TLS).
    var tlsJudged = false
    var pendingMetaContexts: [UInt32: String] = [:]
    var exportName = ""
    var exportSize: UInt64 = 0
    var transmissionFlags: TransmissionFlags = []
    var blockSize: (minimum: UInt32, preferred: UInt32, maximum: UInt32)?
    var sawInfoExport = false
    /// False when decoding started mid-session or lost the handshake to a gap: what was
    /// negotiated is then unknown, so checks that depend on it are not made.
    public internal(set) var negotiationKnown = true
    /// True once bytes are known to be missing (a gap, or a mid-session start): replies may
    /// answer requests never seen, and a bad header means lost framing.
    public internal(set) var lossy = false

    // Transmission state.
    var nextID: UInt64 = 1
    var inFlight: [UInt64: InFlight] = [:]
    /// Requests that reused a cookie still in flight, served after the first completes.
    var duplicates: [UInt64: [InFlight]] = [:]
    /// Entries in `inFlight` and `duplicates` together, against `limits.maxInFlight`.
    var inFlightCount = 0
    /// A reply whose data is still arriving: reported complete only when the last data
    /// byte has passed, so a server that stops in the middle of a READ's data leaves the
    /// request abandoned, not successful.
    var completionAfterPayload: ConversationEvent?
    /// Compliance notes so far, per code (a handful of codes: bounded).
    var complianceCounts: [ComplianceNote.Code: UInt64] = [:]

    /// `midSession`: the streams start somewhere after the handshake (a capture started
    /// late); each direction is decoded from its first recognisable request or reply, with
    /// compact or extended headers inferred from the magics.
    public init(limits: DecoderLimits = DecoderLimits(), allocator: ByteBufferAllocator = ByteBufferAllocator(), midSession: Bool = false) {
        self.limits = limits
        c2s = DirectionState(allocator: allocator)
        s2c = DirectionState(allocator: allocator)
        if midSession { loseNegotiation() }
    }

    /// Whether the handshake is over and requests are flowing.
    public var inTransmission: Bool { phase == .transmission }
    /// Whether the streams became opaque TLS.
    public var isTLS: Bool { phase == .tls }
    /// Requests sent and not yet answered.
    public var requestsInFlight: Int { inFlight.count + duplicates.values.reduce(0) { $0 + $1.count } }
    /// Whether a direction hit a violation that makes further framing impossible.
    public func isBroken(_ d: StreamDirection) -> Bool { state(d).dead }
    /// Total bytes of a direction accounted for so far.
    public func bytesSeen(_ d: StreamDirection) -> UInt64 {
        let s = state(d)
        return s.offset + UInt64(s.pending.readableBytes)
    }

    func state(_ d: StreamDirection) -> DirectionState {
        switch d {
        case .clientToServer: return c2s
        case .serverToClient: return s2c
        }
    }

    @discardableResult
    mutating func withState<R>(_ d: StreamDirection, _ body: (inout DirectionState) -> R) -> R {
        switch d {
        case .clientToServer: return body(&c2s)
        case .serverToClient: return body(&s2c)
        }
    }

    // MARK: Feeding

    /// Feeds bytes of one direction that arrived at `time` (nanoseconds, any epoch).
    public mutating func feed(_ direction: StreamDirection, _ bytes: ByteBuffer, at time: UInt64, into events: inout [ConversationEvent]) {
        var input = bytes
        process(direction, &input, time, &events)
    }

    /// Reports that a direction ended (EOF). When the server's side ends, requests still
    /// in flight can no longer be answered and are reported abandoned.
    /// `cutByRelay`: the stream did not end, a relay cut it (its other side died), so a
    /// message left half-sent is not the sender's fault and is not reported as truncated.
    public mutating func finish(_ direction: StreamDirection, at time: UInt64, into events: inout [ConversationEvent], cutByRelay: Bool = false) {
        var s = state(direction)
        guard !s.finished else { return }
        s.finished = true
        if !s.dead && !cutByRelay {
            if s.hunting {
                // Whatever is pending was never recognised: reported as skipped below.
            } else if s.pending.readableBytes > 0 && !isWaiting(direction) {
                events.append(ConversationEvent(direction: direction, streamOffset: s.offset, time: time,
                    kind: .violation(ProtocolViolation(.truncated, "stream ended inside a message, \(s.pending.readableBytes) bytes of it received"))))
            } else if s.skip > 0 {
                events.append(ConversationEvent(direction: direction, streamOffset: s.offset, time: time,
                    kind: .violation(ProtocolViolation(.truncated, "stream ended \(s.skip) bytes before the end of a payload"))))
            }
        }
        if direction == .serverToClient, let cut = completionAfterPayload, case .completed(var c) = cut.kind {
            // The data never all arrived: the client did not get its answer.
            completionAfterPayload = nil
            c.outcome = .abandoned
            c.replyTime = time
            events.append(ConversationEvent(direction: .serverToClient, streamOffset: cut.streamOffset, time: time, kind: .completed(c)))
        }
        if s.hunting && s.huntSkipped + UInt64(s.pending.readableBytes) > 0 {
            events.append(ConversationEvent(direction: direction, streamOffset: s.offset, time: time,
                                            kind: .skipped(bytes: s.huntSkipped + UInt64(s.pending.readableBytes))))
            s.huntSkipped = 0
        }
        let end = s.offset + UInt64(s.pending.readableBytes)
        withState(direction) { $0 = s }
        // Requests that can no longer be answered are reported before the close, so a
        // log's Disconnect line comes after them and counts them, as nbdkit's does.
        if direction == .serverToClient || (c2s.finished && s2c.finished) {
            abandonInFlight(at: time, offset: end, into: &events)
        }
        events.append(ConversationEvent(direction: direction, streamOffset: end, time: time, kind: .closed))
    }

    mutating func abandonInFlight(at time: UInt64, offset: UInt64, into events: inout [ConversationEvent]) {
        var all = Array(inFlight.values)
        for list in duplicates.values { all += list }
        inFlight.removeAll()
        duplicates.removeAll()
        inFlightCount = 0
        for f in all.sorted(by: { $0.event.id < $1.event.id }) {
            events.append(ConversationEvent(direction: .serverToClient, streamOffset: offset, time: time,
                                            kind: .completed(f.completed(at: time, outcome: .abandoned))))
        }
    }

    /// Whether this direction is blocked until the other side speaks.
    func isWaiting(_ d: StreamDirection) -> Bool {
        if case .wait = required(d, peek: state(d).pending) { return true }
        return false
    }

    enum Need {
        case bytes(Int)
        case wait
        case violation(ProtocolViolation)
    }

    /// The main loop: pass over payload, then frame and parse whole messages, keeping at
    /// most one incomplete message in `pending`.
    mutating func process(_ d: StreamDirection, _ input: inout ByteBuffer, _ time: UInt64, _ events: inout [ConversationEvent]) {
        while true {
            // Payload bytes: counted, reported as spans already, never copied.
            if state(d).skip > 0 {
                withState(d) { s in
                    let fromPending = min(UInt64(s.pending.readableBytes), s.skip)
                    s.pending.moveReaderIndex(forwardBy: Int(fromPending))
                    s.skip -= fromPending
                    s.offset += fromPending
                    if s.skip > 0 {
                        let fromInput = min(UInt64(input.readableBytes), s.skip)
                        input.moveReaderIndex(forwardBy: Int(fromInput))
                        s.skip -= fromInput
                        s.offset += fromInput
                    }
                }
                if state(d).skip > 0 { return }
                if d == .serverToClient, let done = completionAfterPayload {
                    completionAfterPayload = nil
                    events.append(done)
                }
            }
            if state(d).hunting && !hunt(d, &input, time, &events) { return }
            if state(d).dead {
                withState(d) { s in
                    s.offset += UInt64(s.pending.readableBytes + input.readableBytes)
                    s.pending.clear()
                    input.moveReaderIndex(forwardBy: input.readableBytes)
                }
                return
            }
            if phase == .tls && d == .clientToServer && !tlsJudged {
                // After STARTTLS's ACK a TLS client sends a handshake record (0x16); a
                // proxy that terminated TLS (nbdtap's own --tls) relays the client's
                // options in plaintext, which decode as any others.
                var prefix = Array(state(d).pending.readableBytesView.prefix(8))
                prefix += input.readableBytesView.prefix(8 - prefix.count)
                let magic = withUnsafeBytes(of: NBDMagic.iHaveOpt.bigEndian) { Array($0) }
                if prefix.count < 8 && prefix == Array(magic.prefix(prefix.count)) {
                    withState(d) { $0.pending.writeBuffer(&input) }
                    return
                }
                tlsJudged = true
                if prefix == magic {
                    phase = .options
                    continue
                }
            }
            if phase == .tls {
                reportOpaque(d, &input, time, &events)
                return
            }
            let usePending = state(d).pending.readableBytes > 0
            if usePending {
                var pending = state(d).pending
                withState(d) { $0.pending = ByteBuffer() }  // keep one reference: no copy on write
                switch required(d, peek: pending) {
                case .wait:
                    pending.writeBuffer(&input)
                    withState(d) { $0.pending = pending }
                    checkWaitingBound(d, time, &events)
                    return
                case .violation(let v):
                    withState(d) { $0.pending = pending }
                    kill(d, v, time, &events)
                case .bytes(let n):
                    if pending.readableBytes < n {
                        // Take only what this requirement needs, then judge again: a
                        // longer prefix can reveal a longer message (a payload length).
                        let move = min(n - pending.readableBytes, input.readableBytes)
                        var part = input.readSlice(length: move)!
                        pending.writeBuffer(&part)
                        withState(d) { $0.pending = pending }
                        if pending.readableBytes < n { return }
                        continue
                    }
                    parseOne(d, &pending, time, &events)
                    pending.discardReadBytes()
                    withState(d) { $0.pending = pending }
                }
            } else {
                if input.readableBytes == 0 { return }
                switch required(d, peek: input) {
                case .wait:
                    withState(d) { $0.pending.writeBuffer(&input) }
                    checkWaitingBound(d, time, &events)
                    return
                case .violation(let v):
                    kill(d, v, time, &events)
                case .bytes(let n):
                    if input.readableBytes < n {
                        withState(d) { $0.pending.writeBuffer(&input) }
                        return
                    }
                    parseOne(d, &input, time, &events)
                }
            }
        }
    }

    mutating func checkWaitingBound(_ d: StreamDirection, _ time: UInt64, _ events: inout [ConversationEvent]) {
        let n = state(d).pending.readableBytes
        if n > limits.maxWaitingBytes {
            kill(d, ProtocolViolation(.unexpectedData, "\(n) bytes sent while the other side had the turn", fatal: true), time, &events)
        }
    }

    /// After a fatal violation: report it, drop what is buffered, count the rest.
    mutating func kill(_ d: StreamDirection, _ v: ProtocolViolation, _ time: UInt64, _ events: inout [ConversationEvent]) {
        var v = v
        v.fatal = true
        emit(d, state(d).offset, time, .violation(v), &events)
        withState(d) { s in
            s.dead = true
            s.offset += UInt64(s.pending.readableBytes)
            s.pending.clear()
            s.skip = 0
        }
    }

    mutating func reportOpaque(_ d: StreamDirection, _ input: inout ByteBuffer, _ time: UInt64, _ events: inout [ConversationEvent]) {
        let n = state(d).pending.readableBytes + input.readableBytes
        guard n > 0 else { return }
        emit(d, state(d).offset, time, .opaque(StreamSpan(direction: d, offset: state(d).offset, length: UInt64(n))), &events)
        withState(d) { s in
            s.offset += UInt64(n)
            s.pending.clear()
        }
        input.moveReaderIndex(forwardBy: input.readableBytes)
    }

    @inline(__always)
    func emit(_ d: StreamDirection, _ offset: UInt64, _ time: UInt64, _ kind: ConversationEvent.Kind, _ events: inout [ConversationEvent]) {
        events.append(ConversationEvent(direction: d, streamOffset: offset, time: time, kind: kind))
    }

    /// Parses exactly one message that `required` said is complete in `buf`, and advances
    /// the direction's offset past what it consumed.
    mutating func parseOne(_ d: StreamDirection, _ buf: inout ByteBuffer, _ time: UInt64, _ events: inout [ConversationEvent]) {
        let start = buf.readerIndex
        let offset = state(d).offset
        do {
            switch d {
            case .clientToServer: try parseClient(&buf, offset, time, &events)
            case .serverToClient: try parseServer(&buf, offset, time, &events)
            }
        } catch {
            buf.moveReaderIndex(to: start)
            if lossy && phase == .transmission {
                // Bytes are known to be missing, so a bad header means lost framing, not a
                // bad peer: pass this byte and look for the next recognisable message.
                buf.moveReaderIndex(forwardBy: 1)
                withState(d) { s in
                    s.offset += 1
                    s.huntSkipped += 1
                    s.hunting = true
                }
                return
            }
            // Header-level errors (bad magic) leave the stream unframeable.
            kill(d, ProtocolViolation(error.code, error.description, fatal: true), time, &events)
            return
        }
        let used = buf.readerIndex - start
        withState(d) { $0.offset += UInt64(used) }
        if d == .serverToClient, c2s.pending.readableBytes > 0, !c2s.dead, !isWaiting(.clientToServer) {
            // The server's answer may have unblocked bytes the client sent early.
            var empty = ByteBuffer()
            process(.clientToServer, &empty, time, &events)
        } else if d == .clientToServer, s2c.pending.readableBytes > 0, !s2c.dead, !isWaiting(.serverToClient) {
            var empty = ByteBuffer()
            process(.serverToClient, &empty, time, &events)
        }
    }

    /// How many bytes the next message of `d` needs, judged from its first bytes.
    func required(_ d: StreamDirection, peek buf: ByteBuffer) -> Need {
        let r = buf.readerIndex
        switch (d, phase) {
        case (_, .tls):
            return .bytes(1)
        case (_, .closed):
            return .bytes(1)
        case (.clientToServer, .greeting), (.clientToServer, .optionReply), (.clientToServer, .exportNameReply):
            return .wait
        case (.clientToServer, .clientFlags):
            return .bytes(4)
        case (.clientToServer, .options):
            guard let len = buf.getInteger(at: r + 12, as: UInt32.self) else { return .bytes(OptionHeader.length) }
            if Int(len) > limits.maxOptionData {
                return .violation(ProtocolViolation(.tooLarge, "option data of \(len) bytes exceeds the \(limits.maxOptionData)-byte limit", fatal: true))
            }
            return .bytes(OptionHeader.length + Int(len))
        case (.clientToServer, .transmission):
            guard extendedHeaders else { return .bytes(RequestHeader.compactLength) }
            // A BLOCK_STATUS payload (effect length and context ids) is parsed with its
            // header, when it is small enough to hold; any other payload is passed over.
            if let flags = buf.getInteger(at: r + 4, as: UInt16.self), let type = buf.getInteger(at: r + 6, as: UInt16.self),
               flags & CommandFlags.payloadLen.rawValue != 0, type == NBDCommand.blockStatus.rawValue {
                guard let len = buf.getInteger(at: r + 24, as: UInt64.self) else { return .bytes(RequestHeader.extendedLength) }
                if len <= UInt64(limits.maxOptionData) { return .bytes(RequestHeader.extendedLength + Int(len)) }
            }
            return .bytes(RequestHeader.extendedLength)
        case (.serverToClient, .greeting):
            guard let second = buf.getInteger(at: r + 8, as: UInt64.self) else { return .bytes(16) }
            return .bytes(second == NBDMagic.cliservMagic ? ServerGreeting.oldstyleLength : ServerGreeting.newstyleLength)
        case (.serverToClient, .clientFlags), (.serverToClient, .options):
            return .wait
        case (.serverToClient, .optionReply):
            guard let len = buf.getInteger(at: r + 16, as: UInt32.self) else { return .bytes(OptionReplyHeader.length) }
            if Int(len) > limits.maxOptionData {
                return .violation(ProtocolViolation(.tooLarge, "option reply data of \(len) bytes exceeds the \(limits.maxOptionData)-byte limit", fatal: true))
            }
            return .bytes(OptionReplyHeader.length + Int(len))
        case (.serverToClient, .exportNameReply):
            return .bytes(ExportNameReply.length(zeroesOmitted: zeroesOmitted))
        case (.serverToClient, .transmission):
            guard let magic = buf.getInteger(at: r, as: UInt32.self) else { return .bytes(4) }
            switch magic {
            case NBDMagic.simpleReply:
                return .bytes(SimpleReplyHeader.length)
            case NBDMagic.structuredReply:
                guard let type = buf.getInteger(at: r + 6, as: UInt16.self),
                      let len = buf.getInteger(at: r + 16, as: UInt32.self) else { return .bytes(ReplyChunkHeader.structuredLength) }
                return .bytes(ReplyChunkHeader.structuredLength + chunkParseLength(type: type, length: UInt64(len)))
            case NBDMagic.extendedReply:
                guard let type = buf.getInteger(at: r + 6, as: UInt16.self),
                      let len = buf.getInteger(at: r + 24, as: UInt64.self) else { return .bytes(ReplyChunkHeader.extendedLength) }
                return .bytes(ReplyChunkHeader.extendedLength + chunkParseLength(type: type, length: len))
            default:
                return .bytes(4)  // parseServer reports the bad magic
            }
        }
    }

    /// How much of a chunk's payload is parsed (the rest is passed over as a span).
    func chunkParseLength(type: UInt16, length: UInt64) -> Int {
        switch ReplyChunkType(rawValue: type) {
        case .offsetData:
            return Int(min(length, UInt64(ChunkPayload.offsetDataPrefix)))
        case .none, .offsetHole, .blockStatus, .blockStatusExt, .error, .errorOffset, .unknown:
            return length <= UInt64(limits.maxParsedChunk) ? Int(length) : 0
        }
    }

    var zeroesOmitted: Bool {
        serverHandshakeFlags.contains(.noZeroes) && clientFlags.contains(.noZeroes)
    }

    var currentInfo: TransmissionInfo {
        var info = TransmissionInfo(style: style, exportName: exportName, size: exportSize, flags: transmissionFlags,
                                    structuredReplies: structuredReplies, extendedHeaders: extendedHeaders,
                                    metaContexts: metaContexts, blockSize: blockSize, viaGo: false)
        info.tls = tlsJudged
        return info
    }
}

extension WireError {
    var code: ProtocolViolation.Code {
        switch self {
        case .badMagic: return .badMagic
        case .badLength: return .badLength
        case .truncated: return .truncated
        case .inconsistent: return .malformedPayload
        }
    }
}

extension ConversationDecoder {
    /// Whether the handshake is over: transmission started, or the session went into TLS
    /// (whose handshake nbdtap cannot see).
    public var handshakeFinished: Bool {
        switch phase {
        case .transmission, .tls: return true
        case .greeting, .clientFlags, .options, .optionReply, .exportNameReply, .closed: return false
        }
    }

    /// The export size negotiated, once transmission started.
    public var negotiatedExportSize: UInt64? { phase == .transmission ? exportSize : nil }

    /// Whether a request with this cookie awaits its final reply.
    /// The option whose reply the client is waiting for, in the handshake.
    public var optionAwaitingReply: NBDOption? {
        if case .optionReply(let o) = phase { return o }
        return nil
    }

    /// Meta contexts the client selected, by id (for a relay that answers BLOCK_STATUS).
    public var selectedMetaContexts: [UInt32: String] { metaContexts }

    public func isInFlight(cookie: UInt64) -> Bool { inFlight[cookie] != nil }

    /// Whether `finish` was called for this direction.
    public func isFinished(_ d: StreamDirection) -> Bool { state(d).finished }
}

extension ConversationDecoder {
    /// Stream offset up to which every byte of a direction belongs to a message already
    /// reported (bytes after it are an incomplete header still held). A relay that edits
    /// messages forwards up to here.
    public func decidedOffset(_ d: StreamDirection) -> UInt64 { state(d).offset }

    /// Whether a direction is between messages: nothing held, no payload being passed
    /// over. Bytes of nbdtap's own may be inserted into that stream only here.
    public func atMessageBoundary(_ d: StreamDirection) -> Bool {
        let s = state(d)
        return s.pending.readableBytes == 0 && s.skip == 0
    }
}

extension ConversationDecoder {
    /// Payload bytes of a direction that may be passed over unseen: the rest of a WRITE's
    /// data or of a READ reply's data, once its header was framed. A front end that can
    /// move them without reading them (the proxy's kernel path, a capture read where it
    /// lies) calls `passPayload` instead of `feed` for up to this many bytes. 0 while part
    /// of a header is held, while hunting after a gap, and after a fatal violation: the
    /// bytes must then be fed.
    public func payloadAhead(_ d: StreamDirection) -> UInt64 {
        let s = state(d)
        return s.pending.readableBytes == 0 && !s.hunting && !s.dead ? s.skip : 0
    }

    /// Accounts for `count` payload bytes that went by without being fed, exactly as if
    /// they had been (the events are the same: a payload's span was reported with its
    /// header, and a READ completes once its data has passed). Bytes beyond
    /// `payloadAhead(d)` are not payload: a caller passing more is a bug, so the excess is
    /// ignored rather than guessed at, and the return value says how many were taken.
    @discardableResult
    public mutating func passPayload(_ d: StreamDirection, _ count: UInt64, at time: UInt64,
                                     into events: inout [ConversationEvent]) -> UInt64 {
        let n = min(count, payloadAhead(d))
        guard n > 0 else { return 0 }
        let left: UInt64 = withState(d) { s in
            s.skip -= n
            s.offset += n
            return s.skip
        }
        if left == 0, d == .serverToClient, let done = completionAfterPayload {
            // The READ's data has all passed: it is answered, as `process` says when fed.
            completionAfterPayload = nil
            events.append(done)
        }
        return n
    }
}
