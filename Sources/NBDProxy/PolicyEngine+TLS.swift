import NBDConversation
import NBDProtocol
import NIOCore

/// TLS termination as edits: the client's STARTTLS answered by nbdtap (TLS then starts on
/// the client's channel), nbdtap's own STARTTLS to the upstream right after the client's
/// flags (the client's options wait until it is answered), and `--tls require`'s refusals.
/// Both conversations see STARTTLS and its ACK, then plaintext: the decoder goes on
/// decoding options after the ACK when the client's next bytes are an option.
extension PolicyEngine {
    /// Handles an option when TLS is terminated on either side; false when the option is
    /// not TLS's business.
    func tlsOption(_ h: OptionHeader, at offset: UInt64, _ out: inout Output, _ session: ProxySession) -> Bool {
        let end = offset + UInt64(OptionHeader.length) + UInt64(h.dataLength)
        if h.option == .startTLS {
            clientEdits.append(Edit(start: offset, end: end))
            if tls.client != .off && !clientTLSStarted {
                clientTLSStarted = true
                pendingReplies.append(PendingReply(due: 0, bytes: OwnOptionReply.bytes(h.option, .ack), startsTLS: true))
            } else {
                // TLS again, or TLS this side does not offer: refused, nothing forwarded
                // (the upstream's TLS, if any, is nbdtap's own).
                pendingReplies.append(PendingReply(due: 0, bytes: OwnOptionReply.bytes(h.option, clientTLSStarted ? .errInvalid : .errPolicy)))
            }
            return true
        }
        guard tls.client == .require && !clientTLSStarted, h.option != .abort else { return false }
        if h.option == .exportName {
            out.close = "NBD_OPT_EXPORT_NAME before STARTTLS, and --tls require"
        } else {
            clientEdits.append(Edit(start: offset, end: end))
            pendingReplies.append(PendingReply(due: 0, bytes: OwnOptionReply.bytes(h.option, .errTLSReqd)))
        }
        session.note("Refused", [("option", "NBD_OPT_\(h.option.name)"), ("reply", "NBD_REP_ERR_TLS_REQD"), ("reason", "--tls require")])
        return true
    }

    /// nbdtap's STARTTLS to the upstream goes right after the client's flags; the client's
    /// options wait behind it until the upstream answers.
    func startUpstreamTLS(after offset: UInt64) {
        var b = ByteBufferAllocator().buffer(capacity: OptionHeader.length)
        OptionHeader(option: .startTLS, dataLength: 0).write(to: &b)
        clientEdits.append(Edit(start: offset, end: offset, replacement: [b]))
        holds.append(Hold(offset: offset, until: .upstreamTLSAnswered))
        upstreamTLS = .asked
    }

    /// The upstream's answer to nbdtap's STARTTLS, which the client never sees.
    func upstreamStartTLSAnswered(_ h: OptionReplyHeader, at offset: UInt64, _ out: inout Output) {
        upstreamEdits.append(Edit(start: offset, end: offset + UInt64(OptionReplyHeader.length) + UInt64(h.dataLength)))
        if h.type == .ack {
            upstreamTLS = .ready
            out.startUpstreamTLS = true
        } else if tls.upstream == .require {
            out.close = "the upstream refused STARTTLS (NBD_REP_\(h.type.name)) and --upstream-tls require"
        } else {
            upstreamTLS = .plaintext
        }
    }

    /// After the upstream's TLS failed: the client's options get the reason as when the
    /// upstream cannot be reached (`OwnOptionReply.refusal`), until it gives up.
    func refuseAfterUpstreamFailure(_ h: OptionHeader, at offset: UInt64, _ out: inout Output) {
        clientEdits.append(Edit(start: offset, end: offset + UInt64(OptionHeader.length) + UInt64(h.dataLength)))
        let (reply, close) = OwnOptionReply.refusal(h.option, reason: refusal ?? "")
        if let reply { pendingReplies.append(PendingReply(due: 0, bytes: reply)) }
        if close { out.close = refusal }
    }
}
