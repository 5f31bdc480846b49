import NBDConversation
import NBDProtocol
import NBDReport
import NIOCore

/// One client connection and its upstream connection. Everything here runs on the one
/// event loop both channels share, so no locks: the decoder sees each buffer before it is
/// forwarded, and decides nothing about the bytes (they pass unchanged).
final class ProxySession {
    let id: Int
    let eventLoop: EventLoop
    var tap: ConversationTap
    let sink: LogSink?
    let stats: StatsRegistry
    let onClosed: (ProxySession) -> Void
    var client: Channel
    var upstream: Channel?
    var logText: [UInt8] = []
    var clientClosed = false
    var upstreamClosed = false
    var finished = false
    var closing = false
    /// Seconds the connection may stay half-open after the client's EOF.
    let halfCloseSeconds: Double
    /// Set when the proxy shuts down: see ProxySession+Drain.swift.
    var draining = false
    var upstreamEnded = false
    /// The upstream connection closed while the client's was still open.
    var upstreamEndedFirst = false
    /// Stream offset just past the last client message the decoder has framed (a request
    /// header, or the WRITE payload after it): client bytes below it finish a request
    /// already under way.
    var clientFramedEnd: UInt64 = 0
    /// Stream offset just past the last reply payload (READ data) the decoder has framed.
    var serverPayloadEnd: UInt64 = 0
    /// Set when a policy chain is given: the relay edits messages (PolicyEngine).
    var engine: PolicyEngine?
    /// The two relay handlers, for bytes the engine sends when it wakes up.
    weak var clientHandler: RelayHandler?
    weak var upstreamHandler: RelayHandler?
    /// TLS termination's library (nil: STARTTLS passes through).
    var tls: TLSProvider?
    /// An error line was logged for this connection already.
    var errorNoted = false
    /// The engine's wake-up already scheduled (monotonic ns).
    var wakeScheduled: UInt64?
    /// `--rate`: the buckets this connection's bytes are taken from (nil: no limit).
    var shaper: RateShaper?
    /// Busy-polling at queue depth 1 (IdlePolling.swift); nil when off.
    var poller: IdlePoller?
    var pollState = IdlePollState()
    /// The two sockets' descriptors (nbdtap makes both sockets: Sockets.swift); -1 until known.
    var clientDescriptor: Int32 = -1
    var upstreamDescriptor: Int32 = -1
    /// Large payloads move socket to socket in the kernel (RelayHandler+Kernel.swift);
    /// false when the proxy was told not to, or splice(2) refused these sockets.
    var splicing = false
    /// The pipe that path uses, made on first use.
    var splicer: PayloadSplicer?
    /// `--pcap`: this connection's legs, told of the bytes the kernel path and the direct
    /// loop move past their handlers.
    var recording: PcapConnection?
    /// The proxy's count of bytes moved that way.
    var splicedBytes: ByteTally?
    /// Small messages are relayed by the direct loop (RelayHandler+Direct.swift) where it
    /// applies; false when the proxy was told not to.
    var direct = false
    /// The direct loop's read buffer, kept between runs, and the proxy's count of the
    /// bytes it relayed.
    var directBuffer: ByteBuffer?
    var directBytes: ByteTally?
    /// The loop's task is queued on the event loop (once per batch of events).
    var directScheduled = false

    init(id: Int, client: Channel, logFormat: LogFormat?, sink: LogSink?, stats: StatsRegistry, halfCloseSeconds: Double,
         onClosed: @escaping (ProxySession) -> Void) {
        self.id = id
        self.client = client
        self.eventLoop = client.eventLoop
        self.halfCloseSeconds = halfCloseSeconds
        self.tap = ConversationTap(connection: id, logFormat: sink == nil ? nil : logFormat)
        self.sink = sink
        self.stats = stats
        self.onClosed = onClosed
    }

    var requestsInFlight: Int { tap.decoder.requestsInFlight }
    /// Monotonic time of the last byte read from either side, for the idle timeout.
    var lastActivity = monotonicNanoseconds()

    /// The handshake and idle limits, checked on this connection's event loop.
    func startTimers(handshakeSeconds: Double, idleSeconds: Double) {
        if handshakeSeconds > 0 {
            eventLoop.scheduleTask(in: .nanoseconds(Int64(handshakeSeconds * 1e9))) { [weak self] in
                guard let self, !self.closing, !self.tap.decoder.handshakeFinished else { return }
                self.close(reason: "no NBD handshake within \(Self.seconds(handshakeSeconds)) s (--handshake-timeout)")
            }
        }
        if idleSeconds > 0 { scheduleIdleCheck(idleSeconds) }
    }

    func scheduleIdleCheck(_ idleSeconds: Double) {
        let limit = UInt64(idleSeconds * 1e9)
        let due = lastActivity &+ limit
        let now = monotonicNanoseconds()
        let wait = due > now ? due - now : 0
        eventLoop.scheduleTask(in: .nanoseconds(Int64(min(wait, UInt64(Int64.max))))) { [weak self] in
            guard let self, !self.closing else { return }
            if monotonicNanoseconds() &- self.lastActivity >= limit {
                self.close(reason: "idle for \(Self.seconds(idleSeconds)) s (--idle-timeout)")
            } else {
                self.scheduleIdleCheck(idleSeconds)
            }
        }
    }

    static func seconds(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(v) }

    /// Decodes bytes about to be forwarded. Returns false when they broke the protocol
    /// beyond repair: the connection is then closed with the violation logged.
    func observe(_ d: StreamDirection, _ buffer: ByteBuffer) -> Bool {
        tap.feed(d, buffer, at: wallClockNanoseconds(), logText: &logText)
        flushLog()
        for e in tap.events {
            if case .violation(let v) = e.kind, v.fatal {
                close(reason: "\(d == .clientToServer ? "client" : "server") broke the protocol: \(v.reason)")
                return false
            }
        }
        trackFraming(tap.events)
        if draining { endUpstreamIfQuiet() }
        return true
    }

    /// Where the client's request under way ends and where the reply data being relayed
    /// ends, for a drain to finish both: from the tap's events, whichever path fed it (the
    /// transparent relay or the emulation engine).
    func trackFraming(_ events: [ConversationEvent]) {
        for e in events {
            if case .request(let r) = e.kind {
                clientFramedEnd = max(clientFramedEnd, e.streamOffset + UInt64(r.header.wireLength))
            }
            if case .payload(_, let span) = e.kind {
                switch span.direction {
                case .clientToServer: clientFramedEnd = max(clientFramedEnd, span.end)
                case .serverToClient: serverPayloadEnd = max(serverPayloadEnd, span.end)
                }
            }
        }
    }

    /// Payload bytes the kernel moved: the decoder accounts for them as if fed.
    func passed(_ d: StreamDirection, _ count: UInt64) {
        splicedBytes?.add(count)
        tap.passPayload(d, count, at: wallClockNanoseconds(), logText: &logText)
        flushLog()
    }

    /// Accounts for one splice, on either path that makes them (NIO's, the direct loop):
    /// the decoder hears of the bytes that went by. Returns false when bytes were lost in
    /// the pipe: the connection is then closed, since the stream has a hole.
    func account(_ moved: PayloadSplicer.Moved, _ d: StreamDirection) -> Bool {
        if moved.unsupported { splicing = false }
        if moved.bytes > 0 {
            lastActivity = monotonicNanoseconds()
            passed(d, moved.bytes)
        }
        if moved.lost {
            close(reason: "payload bytes moved by splice(2) could not be read back from its pipe")
            return false
        }
        return true
    }

    /// How much of the `ahead` payload bytes the kernel path may move. All, unless a
    /// recording cuts payloads: then the last byte is left for NIO to read, so that it is
    /// recorded with its contents (`PcapSnapCutter` keeps each payload's last byte whole).
    func spliceLimit(_ ahead: UInt64) -> UInt64 {
        recording?.cutter == nil || ahead == 0 ? ahead : ahead - 1
    }

    func payloadSplicer() -> PayloadSplicer? {
        if splicer == nil {
            splicer = PayloadSplicer(copying: recording?.wantsContents ?? false)
            if splicer == nil { splicing = false }
        }
        return splicer
    }

    func flushLog() {
        if !logText.isEmpty {
            sink?.write(logText)
            logText.removeAll(keepingCapacity: true)
        }
    }

    /// A line of nbdtap's own in the log (upstream failures, closes it caused).
    func note(_ action: String, _ fields: [(String, String)]) {
        guard tap.log != nil else { return }
        tap.log!.appendNote(time: wallClockNanoseconds(), action: action, fields: fields, to: &logText)
        flushLog()
    }

    /// Why nbdtap ended the connection, when it did (upstream unreachable, a broken peer),
    /// for the per-connection line on standard error.
    var closeReason: String?

    /// The upstream could not be reached: logged, and the client is told why (see
    /// `UpstreamRefusal`) before the connection closes.
    func upstreamFailed(_ error: Error, upstream: String) {
        let reason = "cannot reach the upstream \(upstream): \(error)"
        note("Upstream", [("error", "\(error)")])
        closeReason = reason
        refuse("nbdtap: \(reason)")
    }

    /// Greets the client and answers its options with `reason` (see `UpstreamRefusal`),
    /// then closes: for a connection nbdtap cannot serve.
    func refuse(_ reason: String) {
        if closeReason == nil { closeReason = reason }
        note("Refused", [("reason", reason)])
        let refusal = UpstreamRefusal(reason: reason)
        client.pipeline.addHandler(refusal, position: .first).whenComplete { [client] result in
            guard case .success = result, let context = try? client.pipeline.syncOperations.context(handler: refusal) else {
                client.close(promise: nil)
                return
            }
            refusal.start(context)
        }
    }

    /// One side reached EOF or closed.
    func sideEnded(_ d: StreamDirection) {
        if d == .serverToClient && !clientClosed { upstreamEndedFirst = true }
        // The client's stream ends after the upstream's: nbdtap cut it off.
        tap.finish(d, at: wallClockNanoseconds(), logText: &logText, cutByRelay: d == .clientToServer && upstreamEndedFirst)
        flushLog()
    }

    /// Closes both channels once; `reason` goes to the log when nbdtap itself caused it.
    func close(reason: String?) {
        guard !closing else { return }
        closing = true
        if let reason {
            note("Close", [("reason", reason)])
            if closeReason == nil { closeReason = reason }
        }
        for ch in [client, upstream].compactMap({ $0 }) {
            // Let bytes already queued reach the peer before the close.
            ch.writeAndFlush(ByteBuffer()).whenComplete { _ in ch.close(promise: nil) }
        }
    }

    func channelInactive(_ ch: Channel) {
        if ch === client { clientClosed = true } else {
            upstreamClosed = true
            if !clientClosed { upstreamEndedFirst = true }
        }
        // The upstream's TLS failed and nbdtap is telling the client why: the client's
        // side stays open for that (ProxySession+TLS.swift).
        if !closing && !(ch !== client && engine?.refusal != nil) { close(reason: nil) }
        if clientClosed && (upstreamClosed || upstream == nil) { finish() }
    }

    func finish() {
        guard !finished else { return }
        finished = true
        noteTLSEndedEarly()
        // The upstream went first: nbdtap cut the client off, perhaps in the middle of a
        // WRITE; that is not the client breaking the protocol.
        if upstreamEndedFirst { tap.finish(.clientToServer, at: wallClockNanoseconds(), logText: &logText, cutByRelay: true) }
        tap.close(at: wallClockNanoseconds(), logText: &logText)
        flushLog()
        stats.add(id, tap.stats)
        onClosed(self)
    }

    /// Called when a read has been relayed, before the loop goes back to epoll_wait.
    func pollBeforeSleeping() {
        guard let poller else { return }
        guard engine == nil, !closing, !draining, pollState.quick, requestsInFlight <= 1 else {
            pollState.sleptAt = monotonicNanoseconds()
            return
        }
        guard clientDescriptor >= 0, upstreamDescriptor >= 0,
              let arrived = poller.waitForInput(clientDescriptor, upstreamDescriptor) else {
            pollState.sleptAt = monotonicNanoseconds()
            return
        }
        if !arrived { pollState.quick = false }
    }
}
