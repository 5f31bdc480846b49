import Foundation
import NBDConversation
import NBDEmulation
import NBDProtocol
import NBDReport
import NIOCore

/// Client to upstream: each decoded option and request asked of the chain, the answer
/// carried out as edits of the client's stream, holds, own replies and own requests.
extension PolicyEngine {
    func fromClient(_ buffer: ByteBuffer, session: ProxySession) -> Output {
        var out = Output()
        fromClient.append(buffer)
        session.tap.feed(.clientToServer, buffer, at: wallClockNanoseconds(), logText: &session.logText)
        session.trackFraming(session.tap.events)
        let now = monotonicNanoseconds()
        for e in session.tap.events where e.direction == .clientToServer {
            switch e.kind {
            case .clientFlags(let f) where !options.acceptsClientFlags(f):
                // The spec: a server drops a client that sets a flag it did not offer.
                out.close = "client flags 0x\(String(f.rawValue, radix: 16)) use a handshake flag nbdtap hid"
            case .option(let h, _) where refusal != nil:
                refuseAfterUpstreamFailure(h, at: e.streamOffset, &out)
            case .clientFlags where tls.upstream != .off:
                startUpstreamTLS(after: e.streamOffset + 4)
            case .option(let h, _) where tls.isActive && tlsOption(h, at: e.streamOffset, &out, session):
                break
            case .option(let h, _):
                switch options.optionDecision(h.option) {
                case .forward:
                    break
                case .refuse(let type):
                    clientEdits.append(Edit(start: e.streamOffset, end: e.streamOffset + UInt64(OptionHeader.length) + UInt64(h.dataLength)))
                    pendingReplies.append(PendingReply(due: 0, bytes: OwnOptionReply.bytes(h.option, type)))
                    session.note("Emulate", [("answered", "NBD_OPT_\(h.option.name)"), ("reply", "NBD_REP_\(type.name)")])
                case .disconnect:
                    out.close = "NBD_OPT_\(h.option.name) is not possible with the emulated handshake"
                }
            case .request(let r):
                request(r, at: e.streamOffset, now: now, session: session)
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
        relayClient(session, &out)
        releaseReplies(session, &out)
        session.flushLog()
        return out
    }

    /// One request through the chain, and the plan turned into edits.
    func request(_ r: RequestEvent, at offset: UInt64, now: UInt64, session: ProxySession) {
        let decoder = session.tap.decoder
        // Only a BLOCK_STATUS is answered from the contexts: no sorting for other requests.
        let contexts = r.header.command == .blockStatus ? decoder.selectedMetaContexts.keys.sorted() : []
        let context = RequestContext(header: r.header, id: r.id, shown: shown, upstream: upstreamFlags,
                                     upstreamMaxPayload: maxPayload, exportSize: decoder.negotiatedExportSize,
                                     metaContexts: contexts, contextFilter: r.contextFilter,
                                     fileExists: { FileManager.default.fileExists(atPath: $0) })
        let plan = chain.request(context)
        let headerEnd = offset + UInt64(r.header.wireLength)
        let due = plan.delay > 0 ? now &+ plan.delay : 0
        switch plan.outcome {
        case .forward, .emulateZero:
            // What goes upstream waits in the stream; nbdtap's own answers wait as replies.
            if plan.delay > 0 { holds.append(Hold(offset: offset, until: .time(due))) }
        case .answer, .answerAllData:
            break
        }
        switch plan.outcome {
        case .forward:
            if plan.pieces > 1, let piece = plan.maxPiece {
                split(r, plan.header, into: plan.pieces, of: piece, at: offset, client: decoder, session: session)
            } else if plan.header != r.header {
                var bytes = ByteBufferAllocator().buffer(capacity: plan.header.wireLength)
                plan.header.write(to: &bytes)
                clientEdits.append(Edit(start: offset, end: headerEnd, replacement: [bytes]))
            }
            if plan.disconnectAfter { clientCut = min(clientCut ?? .max, Self.sum(headerEnd, r.header.payloadLength)) }
        case .answer(let error, let reason, let layer):
            drop(r.header, at: offset)
            pendingReplies.append(PendingReply(due: due, bytes: reply(to: r.header, error: error)))
            // The log's action names the kind of layer: emulation, injected fault, or a
            // limit nbdtap enforces (--max-payload's longest split).
            session.note(layer == "emulate" ? "Emulate" : layer == "error" ? "Inject" : "Refuse",
                         [("id", String(r.id)), ("answered", "NBD_CMD_\(r.header.command.name)"), ("error", error.name), ("reason", reason)])
        case .answerAllData(let contexts, let length):
            drop(r.header, at: offset)
            pendingReplies.append(PendingReply(due: due, bytes: allDataReply(to: r.header, contexts: contexts, length: length)))
        case .emulateZero(let writes):
            clientEdits.append(Edit(start: offset, end: headerEnd, replacement: emulate(r.header, writes, client: decoder)))
            session.note("Emulate", [("id", String(r.id)), ("zero_as_writes", String(writes.count))])
            if writes.isEmpty { pendingReplies.append(PendingReply(due: due, bytes: reply(to: r.header, error: .ok))) }
        }
    }

    /// The request (and its payload, when it comes) is not forwarded.
    func drop(_ h: RequestHeader, at offset: UInt64) {
        clientEdits.append(Edit(start: offset, end: offset + UInt64(h.wireLength)))
        if h.payloadLength > 0 { droppedCookies.insert(h.cookie) }
    }

    /// Relays the client's window as far as the decoder has decided, the holds allow and
    /// the cut reaches.
    func relayClient(_ session: ProxySession, _ out: inout Output) {
        let decided = session.tap.decoder.decidedOffset(.clientToServer)
        while true {
            var cap = decided
            if let cut = clientCut { cap = min(cap, cut) }
            while let h = holds.first {
                if fromClient.start < h.offset {
                    cap = min(cap, h.offset)
                    break
                }
                if released(h) {
                    holds.removeFirst()
                    continue
                }
                cap = min(cap, h.offset)
                if case .time(let due) = h.until { wake(at: due) }
                break
            }
            let before = fromClient.start
            let relayed = relay(&fromClient, &clientEdits, upTo: cap)
            sendUpstream(relayed, &out)
            if let cut = clientCut, fromClient.start >= cut {
                if claimDisconnect() {
                    out.close = disconnect?.description ?? "disconnect point reached"
                    return
                }
                clientCut = nil
                continue
            }
            if fromClient.start == before && relayed.isEmpty { return }
        }
    }

    func released(_ h: Hold) -> Bool {
        switch h.until {
        case .time(let due): return monotonicNanoseconds() >= due
        case .upstreamIdle: return upstream.requestsInFlight == 0
        case .sequentialReadDone(let cookie): return sequentialReads[cookie] == nil
        case .upstreamTLSAnswered: return upstreamTLS == .ready || upstreamTLS == .plaintext
        }
    }

    /// Asks the relay to come back at `due`.
    func wake(at due: UInt64) {
        if wakeAt == nil || due < wakeAt! { wakeAt = due }
    }
}
