import NBDConversation
import NBDEmulation
import NBDProtocol
import NBDReport
import NIOCore

/// Upstream to client: the handshake rewritten as the emulation shows it, replies to
/// nbdtap's own requests dropped or folded into the client's reply, and the pieces of a
/// split READ relayed as one reply.
extension PolicyEngine {
    func fromUpstream(_ buffer: ByteBuffer, session: ProxySession) -> Output {
        var out = Output()
        fromUpstream.append(buffer)
        upstreamEvents.removeAll(keepingCapacity: true)
        upstream.feed(.serverToClient, buffer, at: 0, into: &upstreamEvents)
        var own: [ByteBuffer] = []
        for e in upstreamEvents where e.direction == .serverToClient {
            switch e.kind {
            case .serverGreeting(.newstyle(let f)) where options.handshake == .oldstyle:
                // nbdtap negotiates upstream itself; the client gets an oldstyle greeting
                // once the export is open (see openExportForOldstyleClient).
                upstreamEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(ServerGreeting.newstyleLength)))
                own += openExportForOldstyleClient(upstreamHandshake: f)
            case .serverGreeting(.newstyle(let f)):
                let shownHandshake = options.handshakeFlags(upstream: f)
                if shownHandshake != f {
                    var bytes = ByteBufferAllocator().buffer(capacity: ServerGreeting.newstyleLength)
                    ServerGreeting.newstyle(shownHandshake).write(to: &bytes)
                    upstreamEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(ServerGreeting.newstyleLength), replacement: [bytes]))
                }
            case .optionReply(let h, _, _) where h.option == .startTLS && upstreamTLS == .asked:
                upstreamStartTLSAnswered(h, at: e.streamOffset, &out)
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
                optionReply(h, data, at: e.streamOffset)
            case .exportNameReply(let r):
                upstreamFlags = r.flags
                shown = options.shownFlags(upstream: r.flags, structuredOrExtended: structured || extended)
                var patched = r
                patched.flags = shown
                var bytes = ByteBufferAllocator().buffer(capacity: 134)
                patched.write(to: &bytes)
                upstreamEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(bytes.readableBytes), replacement: [bytes]))
            case .simpleReply(let h) where ownCookies[h.cookie] != nil:
                if let reason = ownSimpleReply(h, at: e.streamOffset) { out.close = reason }
            case .replyChunk(let h, _) where ownCookies[h.cookie] != nil:
                ownChunk(h, at: e.streamOffset)
            case .completed(let c) where ownCookies[c.request.cookie] != nil:
                own += pieceAnswered(c, session: session)
            case .transmissionStarted(let info) where options.handshake == .oldstyle && info.style != .oldstyle:
                shown = options.shownFlags(upstream: info.flags, structuredOrExtended: false)
                var greeting = ByteBufferAllocator().buffer(capacity: ServerGreeting.oldstyleLength)
                ServerGreeting.oldstyle(OldstyleGreeting(size: info.size, globalAndTransmissionFlags: UInt32(shown.rawValue))).write(to: &greeting)
                pendingReplies.append(PendingReply(due: 0, bytes: greeting))
                session.note("Emulate", [("handshake", "oldstyle"), ("upstream_eflags", "0x" + String(info.flags.rawValue, radix: 16)),
                                         ("shown_eflags", "0x" + String(shown.rawValue, radix: 16))])
            case .transmissionStarted(let info) where !options.isTransparent:
                session.note("Emulate", [("upstream_eflags", "0x" + String(info.flags.rawValue, radix: 16)),
                                         ("shown_eflags", "0x" + String(shown.rawValue, radix: 16))])
            case .violation(let v) where v.fatal:
                out.close = "server broke the protocol: \(v.reason)"
            case .clientFlags, .option, .request, .simpleReply, .replyChunk, .payload, .completed, .tlsStarted, .opaque, .transmissionStarted,
                 .violation, .compliance, .gap, .skipped, .closed:
                break
            }
        }
        sendUpstream(own, &out)
        var decided = upstream.decidedOffset(.serverToClient)
        if let cut = serverCut { decided = min(decided, cut) }
        sendClient(relay(&fromUpstream, &upstreamEdits, upTo: decided), session, &out)
        if let cut = serverCut, fromUpstream.start >= cut {
            if claimDisconnect() {
                out.close = disconnect?.description ?? "disconnect point reached"
            } else {
                serverCut = nil
                sendClient(relay(&fromUpstream, &upstreamEdits, upTo: upstream.decidedOffset(.serverToClient)), session, &out)
            }
        }
        // Answers may release a hold (a split READ finished, the upstream idle).
        if out.close == nil { relayClient(session, &out) }
        releaseReplies(session, &out)
        session.flushLog()
        return out
    }

    /// An option reply: structured or extended replies noted, the export's flags shown as
    /// the emulation says, and NBD_INFO_BLOCK_SIZE's maximum held to `--max-payload`
    /// (sent before the ACK if the upstream did not send one).
    func optionReply(_ h: OptionReplyHeader, _ data: OptionReplyData, at offset: UInt64) {
        if h.type == .ack && h.option == .structuredReply { structured = true }
        if h.type == .ack && h.option == .extendedHeaders { structured = true; extended = true }
        if case .info(.blockSize(let minimum, let preferred, let maximum)) = data {
            maxPayload = maximum
            sawBlockSize = true
            if let limit = maxPayloadLimit, maximum > limit {
                let shownMaximum = max(limit, minimum)
                let bytes = OwnOptionReply.info(h.option, .blockSize(minimum: minimum, preferred: min(preferred, Self.powerOfTwo(atMost: shownMaximum)),
                                                                     maximum: shownMaximum))
                upstreamEdits.append(Edit(start: offset, end: offset + UInt64(bytes.readableBytes), replacement: [bytes]))
            }
        }
        if case .info(.export(let size, let flags)) = data {
            upstreamFlags = flags
            shown = options.shownFlags(upstream: flags, structuredOrExtended: structured || extended)
            let bytes = OwnOptionReply.info(h.option, .export(size: size, flags: shown))
            upstreamEdits.append(Edit(start: offset, end: offset + UInt64(bytes.readableBytes), replacement: [bytes]))
        }
        if h.type == .ack && (h.option == .go || h.option == .info) {
            if let limit = maxPayloadLimit, !sawBlockSize {
                // The spec lets a server send information the client did not ask for.
                let bytes = OwnOptionReply.info(h.option, .blockSize(minimum: 1, preferred: min(4096, Self.powerOfTwo(atMost: limit)), maximum: limit))
                upstreamEdits.append(Edit(start: offset, end: offset, replacement: [bytes]))
            }
            sawBlockSize = false
        }
        if h.type.isError { sawBlockSize = false }
    }

    static func powerOfTwo(atMost n: UInt32) -> UInt32 {
        n == 0 ? 1 : UInt32(1) << (31 - UInt32(n.leadingZeroBitCount))
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
}
