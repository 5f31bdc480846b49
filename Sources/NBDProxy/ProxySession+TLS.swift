import NBDProtocol
import NIOCore

/// Starting TLS on one of the session's channels in the middle of the connection: the
/// handler goes first in the pipeline (nearest the socket), so the relay, the log and
/// `--pcap` (whose handler comes after it) see plaintext. Bytes already flushed went out
/// before it; bytes written after it wait in it until its handshake is done.
extension ProxySession {
    func startTLS(onClient: Bool) {
        guard let tls else { return }
        do {
            if onClient {
                try client.pipeline.syncOperations.addHandler(try tls.handler(serverSide: true), position: .first)
            } else if let up = upstream {
                try up.pipeline.syncOperations.addHandler(try tls.handler(serverSide: false), position: .first)
            }
        } catch {
            close(reason: "cannot start TLS with the \(onClient ? "client" : "upstream"): \(error)")
        }
    }

    /// A peer that hangs up in or right after the TLS handshake, before sending anything
    /// in it, most often refused nbdtap's certificate (qemu checks it; TLS 1.3 lets the
    /// server finish its part first, so nbdtap sees no handshake error): said in the log.
    func noteTLSEndedEarly() {
        guard let engine, !errorNoted else { return }
        if engine.clientTLSStarted && tap.decoder.isTLS {
            note("Error", [("side", "client"), ("error", "the client closed during or right after the TLS handshake, before any option (did it reject nbdtap's certificate?)")])
        } else if engine.upstreamTLS == .ready && engine.upstream.isTLS {
            note("Error", [("side", "server"), ("error", "the upstream closed during or right after the TLS handshake (did it reject nbdtap's client certificate?)")])
        }
    }

    /// TLS with the upstream failed while the client negotiates: the client is told why in
    /// the reply to the option it waits on and to every option after it
    /// (NBD_REP_ERR_SHUTDOWN with the reason, which qemu and libnbd print), as when the
    /// upstream cannot be reached; the connection ends when the client gives up, or in 10 s.
    func upstreamTLSFailed(_ error: String) {
        let reason = "nbdtap: TLS with the upstream failed: \(error)"
        closeReason = reason
        guard let engine, !closing else { return }
        engine.refusal = reason
        if let option = tap.decoder.optionAwaitingReply {
            carryOut(engine.replyNow(OwnOptionReply.bytes(option, .errShutdown, message: reason), session: self), flushPartnerLater: nil)
        }
        upstream?.close(promise: nil)
        eventLoop.scheduleTask(in: .seconds(10)) { [weak self] in self?.close(reason: reason) }
    }
}
