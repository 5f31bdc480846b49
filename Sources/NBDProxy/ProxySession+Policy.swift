import NBDConversation
import NIOCore

/// Carrying out what the policy engine decided: its bytes to each side, its closes, and
/// its wake-ups (a delay's end, a reply's time), on this connection's event loop.
extension ProxySession {
    /// Writes `out`. After a read, the side it came from flushes its partner when the
    /// read completes (`flushPartnerLater`); after a wake-up both sides are flushed now.
    func carryOut(_ out: PolicyEngine.Output, flushPartnerLater from: StreamDirection?) {
        let clientContext = clientHandler?.context
        let upstreamContext = upstreamHandler?.context
        for b in out.toClient { clientContext?.write(NIOAny(b), promise: nil) }
        if out.startClientTLS {
            // The ACK goes out in plaintext first; everything after it through TLS.
            clientContext?.flush()
            startTLS(onClient: true)
        }
        if out.startUpstreamTLS { startTLS(onClient: false) }
        for b in out.toUpstream { upstreamContext?.write(NIOAny(b), promise: nil) }
        if !out.toClient.isEmpty && from != .serverToClient { clientContext?.flush() }
        if !out.toUpstream.isEmpty && from != .clientToServer { upstreamContext?.flush() }
        if let reason = out.close {
            clientHandler?.broken = true
            upstreamHandler?.broken = true
            close(reason: reason)
            return
        }
        if draining { endUpstreamIfQuiet() }
        scheduleWake()
        clientHandler?.resume()
        upstreamHandler?.resume()
    }

    /// Comes back when the engine asked to (one timer at a time, the earliest).
    func scheduleWake() {
        guard let engine, let due = engine.wakeAt, !closing else { return }
        engine.wakeAt = nil
        if let scheduled = wakeScheduled, scheduled <= due { return }
        wakeScheduled = due
        let now = monotonicNanoseconds()
        let wait = due > now ? due - now : 0
        eventLoop.scheduleTask(in: .nanoseconds(Int64(min(wait, 3_600_000_000_000)))) { [weak self] in
            guard let self, !self.closing, let engine = self.engine else { return }
            if self.wakeScheduled == due { self.wakeScheduled = nil }
            self.carryOut(engine.resume(session: self), flushPartnerLater: nil)
        }
    }
}
