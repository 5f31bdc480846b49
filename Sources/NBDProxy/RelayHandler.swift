import NBDConversation
import NIOCore
import NIOTLS

/// Relays one direction: bytes read from this handler's channel are shown to the session's
/// decoder, then written unchanged to the partner channel. Reads are issued by hand
/// (autoRead off) only while the partner can take more, which is the backpressure: a slow
/// reader stops the reading of its peer instead of filling memory.
final class RelayHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let direction: StreamDirection
    let session: ProxySession
    var context: ChannelHandlerContext?
    weak var partner: RelayHandler?
    var readPending = false
    var broken = false
    /// TLS (terminated by nbdtap) finished its handshake on this channel.
    var tlsHandshakeDone = false
    /// Bytes read since the last read completed, for `--rate`.
    var bytesThisRound = 0
    /// `--rate`: reading waits until then (monotonic ns).
    var throttledUntil: UInt64?
    /// Runs once when this channel becomes active (the client side uses it to connect upstream).
    var onActive: (() -> Void)?
    /// The kernel path (RelayHandler+Kernel.swift): NIO's reads are small now, and the last
    /// message this direction framed had a large payload.
    var readingSmall = false
    var largePayloadsFlowing = false
    /// The buffer of the last read (until its read completes) and the one kept shared
    /// while reads are small (RelayHandler+Kernel.swift says why).
    var lastRead: ByteBuffer?
    var heldBuffer: ByteBuffer?
    /// NIO reads once per wake-up on this channel (set once large payloads were seen).
    var onePerWakeUp = false
    /// A payload is ahead and waits, unread, for NIO to write what it holds for the
    /// partner (RelayHandler+Kernel.swift): this side reads again once that is done.
    var waitingForPartner = false

    init(direction: StreamDirection, session: ProxySession) {
        self.direction = direction
        self.session = session
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        heldBuffer = nil
        lastRead = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if let f = onActive {
            onActive = nil
            f()
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !broken else { return }
        session.lastActivity = monotonicNanoseconds()
        if let poller = session.poller { session.pollState.input(window: poller.windowNanoseconds) }
        var buffer = unwrapInboundIn(data)
        bytesThisRound += buffer.readableBytes
        if direction == .clientToServer && session.draining {
            // Shutting down: finish the request under way, start no new one. A slice
            // shares the buffer's storage, so this copies nothing.
            let owed = session.clientOwed
            guard owed > 0 else { return }
            if buffer.readableBytes > owed { buffer = buffer.getSlice(at: buffer.readerIndex, length: owed)! }
        }
        if let engine = session.engine {
            relayEdited(engine, buffer, context)
            return
        }
        guard session.observe(direction, buffer) else {
            broken = true
            return
        }
        if session.splicing {
            notePayloads(session.tap.events)
            noteRead(buffer)
        }
        partner?.context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    /// A policy chain is given: the engine decides what each side receives.
    func relayEdited(_ engine: PolicyEngine, _ buffer: ByteBuffer, _ context: ChannelHandlerContext) {
        let out = direction == .clientToServer ? engine.fromClient(buffer, session: session) : engine.fromUpstream(buffer, session: session)
        session.carryOut(out, flushPartnerLater: direction)
    }

    /// The client side stops reading once a shutdown has nothing more to take from it.
    var mayRead: Bool {
        direction == .serverToClient || (session.clientMayRead && session.engine?.mayReadClient != false)
    }

    /// Whether what reading this channel produces can be taken: the partner's channel must
    /// have room, and in emulation mode this channel's too, since nbdtap answers some
    /// messages itself (a refused option or request) on the channel they came from: a
    /// client sending refused requests without reading the answers must be slowed down
    /// like one whose replies come from the server.
    func outputsHaveRoom(_ p: ChannelHandlerContext, _ context: ChannelHandlerContext) -> Bool {
        p.channel.isWritable && (session.engine == nil || context.channel.isWritable)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard let p = partner?.context else {
            // The upstream is gone after its TLS failed; the client is still read, so
            // that each of its options gets the reason.
            if direction == .clientToServer && session.engine?.refusal != nil { context.read() }
            return
        }
        p.flush()
        if kernelPathInUse { movePayloadInKernel(context, partner: p) }
        guard mayRead, !waitingForPartner else {
            // Shutting down, or a hold keeps as much as it may: `resume` reads again when
            // that changes (it checks `mayRead` too).
            readPending = true
            return
        }
        if throttle(context) { return }
        if outputsHaveRoom(p, context) {
            context.read()
        } else {
            readPending = true
        }
        if !scheduleDirectLoop(context) { session.pollBeforeSleeping() }
    }

    /// `--rate`: after a read, waits as long as the buckets say before the next one.
    func throttle(_ context: ChannelHandlerContext) -> Bool {
        guard let shaper = session.shaper else { return false }
        let wait = shaper.take(bytesThisRound, reading: direction == .clientToServer)
        bytesThisRound = 0
        guard wait > 0 else { return false }
        readPending = true
        throttledUntil = monotonicNanoseconds() &+ wait
        context.eventLoop.scheduleTask(in: .nanoseconds(Int64(min(wait, 3_600_000_000_000)))) { [weak self] in
            self?.throttledUntil = nil
            self?.resume()
        }
        return true
    }

    /// Starts the first read once both sides are wired.
    func start() { context?.read() }

    /// Our channel drained: the partner may read again.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            partner?.resume()
            // Emulation: this side may have stopped for its own answers to drain.
            if session.engine != nil { resume() }
        }
        context.fireChannelWritabilityChanged()
    }

    func resume() {
        guard readPending, throttledUntil == nil, mayRead, !waitingForPartner, let c = context, let p = partner?.context,
              outputsHaveRoom(p, c) else { return }
        readPending = false
        c.read()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? TLSUserEvent, case .handshakeCompleted = e { tlsHandshakeDone = true }
        if let e = event as? ChannelEvent, e == .inputClosed, direction == .serverToClient, session.engine?.refusal != nil {
            // The upstream's TLS failed and nbdtap is telling the client why itself.
            return
        }
        if let e = event as? ChannelEvent, e == .inputClosed {
            // EOF from this side: the decoder learns the stream ended; the peer gets EOF
            // too, after what was already queued for it.
            session.sideEnded(direction)
            if let p = partner?.context {
                let ch = p.channel
                p.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in
                    ch.close(mode: .output, promise: nil)
                }
            }
            if direction == .serverToClient {
                // The server is gone: nothing more can be answered.
                session.close(reason: nil)
            } else {
                let s = session
                context.eventLoop.scheduleTask(in: .nanoseconds(Int64(s.halfCloseSeconds * 1e9))) { s.close(reason: nil) }
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !session.tap.decoder.isFinished(direction) { session.sideEnded(direction) }
        session.channelInactive(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A TLS peer that closes its socket without close_notify (libnbd, qemu and nbdkit
        // all may) has ended the connection the way a plaintext peer does: not an error,
        // once the handshake is done. Before that, it refused the handshake (a certificate
        // it does not trust, say): that is the line a person needs.
        if session.tls?.isUncleanShutdown(error) == true {
            if !tlsHandshakeDone {
                session.errorNoted = true
                session.note("Error", [("side", direction == .clientToServer ? "client" : "server"),
                                       ("error", "the peer closed during the TLS handshake (did it reject nbdtap's certificate or credentials?)")])
            }
            context.close(promise: nil)
            return
        }
        session.errorNoted = true
        session.note("Error", [("side", direction == .clientToServer ? "client" : "server"), ("error", "\(error)")])
        if direction == .serverToClient, !tlsHandshakeDone, session.engine?.upstreamTLS == .ready {
            session.upstreamTLSFailed("\(error)")
            return
        }
        context.close(promise: nil)
    }
}
