import NBDProtocol
import NIOCore

/// Option replies nbdtap writes itself, in one place: refusals (the emulation's, `--tls
/// require`'s, a connection nbdtap cannot serve), its ACK to STARTTLS, and the NBD_REP_INFO
/// replies it rewrites or adds.
enum OwnOptionReply {
    /// A reply with no data, or with a message (an error's text, which qemu prints).
    static func bytes(_ option: NBDOption, _ type: OptionReplyType, message: String = "") -> ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: OptionReplyHeader.length + message.utf8.count)
        OptionReplyHeader(option: option, type: type, dataLength: UInt32(message.utf8.count)).write(to: &b)
        b.writeString(message)
        return b
    }

    /// NBD_REP_INFO carrying `info`.
    static func info(_ option: NBDOption, _ info: InfoPayload) -> ByteBuffer {
        var payload = ByteBufferAllocator().buffer(capacity: 16)
        info.write(to: &payload)
        var b = ByteBufferAllocator().buffer(capacity: OptionReplyHeader.length + payload.readableBytes)
        OptionReplyHeader(option: option, type: .info, dataLength: UInt32(payload.readableBytes)).write(to: &b)
        b.writeBuffer(&payload)
        return b
    }

    /// How nbdtap answers an option while it turns the connection away with `reason` (the
    /// upstream unreachable, or TLS with it failed): NBD_REP_ERR_SHUTDOWN with the reason,
    /// an ACK to ABORT and then the end, and the end at once for EXPORT_NAME, which has no
    /// error reply.
    static func refusal(_ option: NBDOption, reason: String) -> (reply: ByteBuffer?, close: Bool) {
        switch option {
        case .exportName:
            return (nil, true)
        case .abort:
            return (bytes(option, .ack), true)
        case .list, .peekExport, .startTLS, .info, .go, .structuredReply, .listMetaContext, .setMetaContext,
             .extendedHeaders, .unknown:
            return (bytes(option, .errShutdown, message: reason), false)
        }
    }
}
