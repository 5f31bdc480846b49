import NBDConversation
import NBDEmulation
import NBDProtocol
import NBDReport
import NIOCore

/// The relay in emulation mode (`--mask`, `--read-only`, `--no-...`, `--fastzeromode`,
/// `--emulate`): two conversations, the client's (the session's tap, logged) and the
/// upstream's (a second decoder), and the bytes between them edited message by message.
/// Bytes nobody edits are forwarded as the slices they arrived in; an edit drops a range
/// (an option or request nbdtap answers itself, with its payload) or replaces it with bytes
/// of the same message (flags masked in a greeting or NBD_INFO_EXPORT, a request's flags).
/// nbdtap's own replies enter the client's stream only between relayed messages.
final class EmulationEngine {
    let options: EmulationOptions
    var upstream = ConversationDecoder()
    var fromClient = StreamWindow()
    var fromUpstream = StreamWindow()
    /// Ranges of each input stream not forwarded as they are, in stream order.
    var clientEdits: [Edit] = []
    var upstreamEdits: [Edit] = []
    /// Replies of nbdtap's own waiting for a message boundary in the client's stream.
    var pendingReplies: [ByteBuffer] = []
    /// A request nbdtap answers itself: its payload is dropped too.
    var droppedCookies: Set<UInt64> = []
    var upstreamFlags: TransmissionFlags = []
    var shown: TransmissionFlags = []
    var maxPayload: UInt32?
    var structured = false
    var extended = false
    var upstreamEvents: [ConversationEvent] = []

    struct Edit {
        var start: UInt64
        var end: UInt64
        /// Bytes sent instead of the range (none: the range is dropped).
        var replacement: [ByteBuffer] = []

        init(start: UInt64, end: UInt64, replacement: [ByteBuffer] = []) {
            self.start = start
            self.end = end
            self.replacement = replacement
        }
    }

    /// A client WRITE_ZEROES served by WRITEs of zeroes: the pieces still unanswered and
    /// the first error, so the client gets one reply when the last piece is answered.
    struct EmulatedZero {
        var request: RequestHeader
        var remaining: Int
        var error: ErrorValue = .ok
    }
    /// Cookies of nbdtap's own WRITEs, to the client cookie they serve. The client never
    /// sees them: their replies are dropped.
    var ownCookies: [UInt64: UInt64] = [:]
    var emulatedZeroes: [UInt64: EmulatedZero] = [:]
    var nextOwnCookie: UInt64 = 0x6e62_6474_6170_0000  // "nbdtap" in the high bytes
    /// Zeroes shared by every emulated WRITE of every connection (sliced, never copied,
    /// allocated on first use).
    static let zeroes: ByteBuffer = {
        var b = ByteBufferAllocator().buffer(capacity: Int(ZeroWrites.defaultPieceLength))
        b.writeRepeatingByte(0, count: Int(ZeroWrites.defaultPieceLength))
        return b
    }()

    /// What one read turns into.
    struct Output {
        var toUpstream: [ByteBuffer] = []
        var toClient: [ByteBuffer] = []
        /// A fatal violation or a decision to hang up, with the reason.
        var close: String?
    }

    init(options: EmulationOptions) {
        self.options = options
    }

    // MARK: Client to upstream

    func fromClient(_ buffer: ByteBuffer, session: ProxySession) -> Output {
        var out = Output()
        fromClient.append(buffer)
        session.tap.feed(.clientToServer, buffer, at: wallClockNanoseconds(), logText: &session.logText)
        session.trackFraming(session.tap.events)
        for e in session.tap.events where e.direction == .clientToServer {
            switch e.kind {
            case .clientFlags(let f) where !options.acceptsClientFlags(f):
                // The spec: a server drops a client that sets a flag it did not offer.
                out.close = "client flags 0x\(String(f.rawValue, radix: 16)) use a handshake flag nbdtap hid"
            case .option(let h, _):
                switch options.optionDecision(h.option) {
                case .forward:
                    break
                case .refuse(let type):
                    clientEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(OptionHeader.length) + UInt64(h.dataLength)))
                    var reply = ByteBufferAllocator().buffer(capacity: OptionReplyHeader.length)
                    OptionReplyHeader(option: h.option, type: type, dataLength: 0).write(to: &reply)
                    pendingReplies.append(reply)
                    session.note("Emulate", [("answered", "NBD_OPT_\(h.option.name)"), ("reply", "NBD_REP_\(type.name)")])
                case .disconnect:
                    out.close = "NBD_OPT_\(h.option.name) is not possible with the emulated handshake"
                }
            case .request(let r):
                let decision = options.requestDecision(r.header, shown: shown, upstream: upstreamFlags, maxPayload: maxPayload,
                                                       exportSize: session.tap.decoder.negotiatedExportSize)
                switch decision {
                case .forward(let h):
                    if h != r.header {
                        var bytes = ByteBufferAllocator().buffer(capacity: h.wireLength)
                        h.write(to: &bytes)
                        clientEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(h.wireLength), replacement: [bytes]))
                    }
                case .answer(let error, let reason):
                    clientEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(r.header.wireLength)))
                    droppedCookies.insert(r.header.cookie)
                    pendingReplies.append(reply(to: r.header, error: error))
                    session.note("Emulate", [("id", String(r.id)), ("answered", "NBD_CMD_\(r.header.command.name)"),
                                             ("error", error.name), ("reason", "\(reason)")])
                case .emulateZero(let writes):
                    clientEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(r.header.wireLength),
                                            replacement: emulate(r.header, writes) { session.tap.decoder.isInFlight(cookie: $0) }))
                    session.note("Emulate", [("id", String(r.id)), ("zero_as_writes", String(writes.count))])
                    if writes.isEmpty { pendingReplies.append(reply(to: r.header, error: .ok)) }
                }
            case .payload(let cookie, let span) where span.direction == .clientToServer:
                if droppedCookies.remove(cookie) != nil {
                    clientEdits.append(Edit(start: span.offset, end: span.end))
                }
            case .violation(let v) where v.fatal:
                out.close = "client broke the protocol: \(v.reason)"
            case .serverGreeting, .clientFlags, .optionReply, .exportNameReply, .transmissionStarted, .simpleReply, .replyChunk,
                 .payload, .completed, .tlsStarted, .opaque, .violation, .compliance, .gap, .skipped, .closed:
                break
            }
        }
        out.toUpstream = relay(&fromClient, &clientEdits, upTo: session.tap.decoder.decidedOffset(.clientToServer))
        for b in out.toUpstream {
            upstream.feed(.clientToServer, b, at: 0, into: &upstreamEvents)
        }
        upstreamEvents.removeAll(keepingCapacity: true)
        out.toClient = releaseReplies(session)
        session.flushLog()
        return out
    }

    /// nbdtap's own reply to a request, in the form the client negotiated: simple, a
    /// structured error chunk for READ, and under extended headers (where simple replies
    /// are not allowed) an extended NBD_REPLY_TYPE_NONE chunk for success or an extended
    /// error chunk.
    func reply(to h: RequestHeader, error: ErrorValue) -> ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: 48)
        if extended && error == .ok {
            ReplyChunkHeader(flags: .done, type: .none, cookie: h.cookie, offset: h.offset, length: 0, extended: true).write(to: &b)
        } else if extended || (structured && h.command == .read) {
            let payload = ChunkPayload.error(error: error, message: "")
            ReplyChunkHeader(flags: .done, type: .error, cookie: h.cookie, offset: h.offset,
                             length: payload.wireLength, extended: extended).write(to: &b)
            payload.write(to: &b)
        } else {
            SimpleReplyHeader(error: error, cookie: h.cookie).write(to: &b)
        }
        return b
    }

    // MARK: Upstream to client

    func fromUpstream(_ buffer: ByteBuffer, session: ProxySession) -> Output {
        var out = Output()
        fromUpstream.append(buffer)
        upstreamEvents.removeAll(keepingCapacity: true)
        upstream.feed(.serverToClient, buffer, at: 0, into: &upstreamEvents)
        for e in upstreamEvents where e.direction == .serverToClient {
            switch e.kind {
            case .serverGreeting(.newstyle(let f)) where options.handshake == .oldstyle:
                // nbdtap negotiates upstream itself; the client gets an oldstyle greeting
                // once the export is open (see openExportForOldstyleClient).
                upstreamEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(ServerGreeting.newstyleLength)))
                out.toUpstream += openExportForOldstyleClient(upstreamHandshake: f)
            case .serverGreeting(.newstyle(let f)):
                let shownHandshake = options.handshakeFlags(upstream: f)
                if shownHandshake != f {
                    var bytes = ByteBufferAllocator().buffer(capacity: ServerGreeting.newstyleLength)
                    ServerGreeting.newstyle(shownHandshake).write(to: &bytes)
                    upstreamEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(ServerGreeting.newstyleLength), replacement: [bytes]))
                }
            case .optionReply(let h, let data, _) where options.handshake == .oldstyle:
                // Replies to nbdtap's own GO: never shown to the client.
                upstreamEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(OptionReplyHeader.length) + UInt64(h.dataLength)))
                if case .info(.export(_, let flags)) = data { upstreamFlags = flags }
                if case .info(.blockSize(_, _, let maximum)) = data { maxPayload = maximum }
                if h.type.isError { out.close = "upstream refused NBD_OPT_GO: NBD_REP_\(h.type.name)" }
            case .serverGreeting(.oldstyle(let g)):
                upstreamFlags = g.transmissionFlags
                shown = options.shownFlags(upstream: upstreamFlags, structuredOrExtended: false)
                var patched = g
                patched.globalAndTransmissionFlags = (g.globalAndTransmissionFlags & 0xffff_0000) | UInt32(shown.rawValue)
                var bytes = ByteBufferAllocator().buffer(capacity: ServerGreeting.oldstyleLength)
                ServerGreeting.oldstyle(patched).write(to: &bytes)
                upstreamEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(ServerGreeting.oldstyleLength), replacement: [bytes]))
            case .optionReply(let h, let data, _):
                if h.type == .ack && h.option == .structuredReply { structured = true }
                if h.type == .ack && h.option == .extendedHeaders { structured = true; extended = true }
                if case .info(.blockSize(_, _, let maximum)) = data { maxPayload = maximum }
                if case .info(.export(let size, let flags)) = data {
                    upstreamFlags = flags
                    shown = options.shownFlags(upstream: flags, structuredOrExtended: structured || extended)
                    var bytes = ByteBufferAllocator().buffer(capacity: OptionReplyHeader.length + 12)
                    OptionReplyHeader(option: h.option, type: .info, dataLength: 12).write(to: &bytes)
                    InfoPayload.export(size: size, flags: shown).write(to: &bytes)
                    upstreamEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(bytes.readableBytes), replacement: [bytes]))
                }
            case .exportNameReply(let r):
                upstreamFlags = r.flags
                shown = options.shownFlags(upstream: r.flags, structuredOrExtended: structured || extended)
                var patched = r
                patched.flags = shown
                var bytes = ByteBufferAllocator().buffer(capacity: 134)
                patched.write(to: &bytes)
                upstreamEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(bytes.readableBytes), replacement: [bytes]))
            case .simpleReply(let h) where ownCookies[h.cookie] != nil:
                upstreamEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(SimpleReplyHeader.length)))
            case .replyChunk(let h, _) where ownCookies[h.cookie] != nil:
                upstreamEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(h.wireLength) + h.length))
            case .completed(let c) where ownCookies[c.request.cookie] != nil:
                pieceAnswered(c)
            case .transmissionStarted(let info) where options.handshake == .oldstyle && info.style != .oldstyle:
                shown = options.shownFlags(upstream: info.flags, structuredOrExtended: false)
                var greeting = ByteBufferAllocator().buffer(capacity: ServerGreeting.oldstyleLength)
                ServerGreeting.oldstyle(OldstyleGreeting(size: info.size, globalAndTransmissionFlags: UInt32(shown.rawValue))).write(to: &greeting)
                pendingReplies.append(greeting)
                session.note("Emulate", [("handshake", "oldstyle"), ("upstream_eflags", "0x" + String(info.flags.rawValue, radix: 16)),
                                         ("shown_eflags", "0x" + String(shown.rawValue, radix: 16))])
            case .transmissionStarted(let info):
                session.note("Emulate", [("upstream_eflags", "0x" + String(info.flags.rawValue, radix: 16)),
                                         ("shown_eflags", "0x" + String(shown.rawValue, radix: 16))])
            case .violation(let v) where v.fatal:
                out.close = "server broke the protocol: \(v.reason)"
            case .clientFlags, .option, .request, .simpleReply, .replyChunk, .payload, .completed, .tlsStarted, .opaque,
                 .violation, .compliance, .gap, .skipped, .closed:
                break
            }
        }
        for b in out.toUpstream {
            var ignored: [ConversationEvent] = []
            upstream.feed(.clientToServer, b, at: 0, into: &ignored)
        }
        let relayed = relay(&fromUpstream, &upstreamEdits, upTo: upstream.decidedOffset(.serverToClient))
        for b in relayed {
            session.tap.feed(.serverToClient, b, at: wallClockNanoseconds(), logText: &session.logText)
            session.trackFraming(session.tap.events)
        }
        out.toClient = relayed + releaseReplies(session)
        session.flushLog()
        return out
    }

    /// `--handshake oldstyle`: nbdtap answers the upstream's newstyle greeting as a client
    /// would (client flags, then NBD_OPT_GO for the default export with no structured
    /// replies, which an oldstyle client could not read); the client's oldstyle greeting
    /// is sent when the upstream acknowledges.
    func openExportForOldstyleClient(upstreamHandshake f: HandshakeFlags) -> [ByteBuffer] {
        var b = ByteBufferAllocator().buffer(capacity: 64)
        var flags: ClientFlags = []
        if f.contains(.fixedNewstyle) { flags.insert(.fixedNewstyle) }
        if f.contains(.noZeroes) { flags.insert(.noZeroes) }
        b.writeInteger(flags.rawValue)
        var data = ByteBufferAllocator().buffer(capacity: 16)
        InfoRequest(exportName: "", requests: [.blockSize]).write(to: &data)
        OptionHeader(option: .go, dataLength: UInt32(data.readableBytes)).write(to: &b)
        b.writeBuffer(&data)
        return [b]
    }

    /// The WRITEs of zeroes standing in for a client's WRITE_ZEROES, in order, each with a
    /// cookie of nbdtap's own and a slice of the shared zero buffer as payload.
    func emulate(_ request: RequestHeader, _ writes: ZeroWrites, clientInFlight: (UInt64) -> Bool) -> [ByteBuffer] {
        var out: [ByteBuffer] = []
        if !writes.isEmpty {
            emulatedZeroes[request.cookie] = EmulatedZero(request: request, remaining: writes.count)
        }
        for w in writes {
            // Never a cookie in flight from the client (forwarded, or in this same read and
            // not yet fed to the upstream conversation) or upstream: a client may use any
            // value, this range included.
            while clientInFlight(nextOwnCookie) || upstream.isInFlight(cookie: nextOwnCookie) || ownCookies[nextOwnCookie] != nil {
                nextOwnCookie &+= 1
            }
            let cookie = nextOwnCookie
            nextOwnCookie &+= 1
            ownCookies[cookie] = request.cookie
            var header = ByteBufferAllocator().buffer(capacity: RequestHeader.extendedLength)
            var flags: CommandFlags = w.fua ? .fua : []
            if extended { flags.insert(.payloadLen) }
            RequestHeader(flags: flags, command: .write, cookie: cookie, offset: w.offset, length: UInt64(w.length),
                          extended: extended).write(to: &header)
            out.append(header)
            var left = Int(w.length)
            while left > 0 {
                let z = Self.zeroes
                let n = min(left, z.readableBytes)
                out.append(z.getSlice(at: z.readerIndex, length: n)!)
                left -= n
            }
        }
        return out
    }

    /// One of nbdtap's WRITEs was answered: when it is the last of its WRITE_ZEROES, the
    /// client gets its reply (the first error, or success).
    func pieceAnswered(_ c: CompletedRequest) {
        guard let clientCookie = ownCookies.removeValue(forKey: c.request.cookie),
              var z = emulatedZeroes[clientCookie] else { return }
        z.remaining -= 1
        if z.error == .ok && c.outcome == .replied && c.error != .ok { z.error = c.error }
        if z.remaining > 0 {
            emulatedZeroes[clientCookie] = z
            return
        }
        emulatedZeroes[clientCookie] = nil
        pendingReplies.append(reply(to: z.request, error: z.error))
    }

    /// nbdtap's replies, once the stream relayed to the client is between messages.
    func releaseReplies(_ session: ProxySession) -> [ByteBuffer] {
        guard !pendingReplies.isEmpty, upstream.atMessageBoundary(.serverToClient),
              fromUpstream.start == upstream.decidedOffset(.serverToClient) else { return [] }
        let replies = pendingReplies
        pendingReplies.removeAll()
        for r in replies {
            session.tap.feed(.serverToClient, r, at: wallClockNanoseconds(), logText: &session.logText)
            session.trackFraming(session.tap.events)
        }
        return replies
    }

    /// Forwards the window up to `decided`, applying the edits that start before it. An
    /// edit reaching past `decided` (a payload still arriving) is applied as far as it can
    /// be and kept for the rest.
    func relay(_ window: inout StreamWindow, _ edits: inout [Edit], upTo decided: UInt64) -> [ByteBuffer] {
        var out: [ByteBuffer] = []
        while window.start < decided {
            if var edit = edits.first, edit.start < decided {
                if window.start < edit.start {
                    out += window.take(upTo: edit.start)
                    continue
                }
                let stop = min(edit.end, decided)
                _ = window.take(upTo: stop)
                if !edit.replacement.isEmpty {
                    out += edit.replacement
                    edit.replacement = []
                }
                if stop >= edit.end {
                    edits.removeFirst()
                } else {
                    edit.start = stop
                    edits[0] = edit
                }
            } else {
                out += window.take(upTo: decided)
            }
        }
        return out
    }
}
