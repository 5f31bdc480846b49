import NBDConversation
import NBDProtocol
import NIOCore

/// When the upstream cannot be reached, the client is told why instead of seeing a bare
/// disconnect (as nbdkit's nbd plugin tells its clients): nbdtap greets it as a fixed
/// newstyle server and answers each option with NBD_REP_ERR_SHUTDOWN carrying the reason,
/// until the client gives up (an error to NBD_OPT_GO is what libnbd and qemu report), sends
/// NBD_OPT_EXPORT_NAME (which has no error reply) or NBD_OPT_ABORT, or 10 s pass.
final class UpstreamRefusal: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let reason: String
    var decoder = ConversationDecoder()
    var events: [ConversationEvent] = []
    /// At most this many options are answered before nbdtap hangs up.
    var optionsLeft = 16

    init(reason: String) { self.reason = reason }

    func start(_ context: ChannelHandlerContext) {
        var greeting = context.channel.allocator.buffer(capacity: ServerGreeting.newstyleLength)
        ServerGreeting.newstyle([.fixedNewstyle, .noZeroes]).write(to: &greeting)
        send(greeting, context)
        context.read()
        context.eventLoop.scheduleTask(in: .seconds(10)) { context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        events.removeAll(keepingCapacity: true)
        decoder.feed(.clientToServer, unwrapInboundIn(data), at: 0, into: &events)
        for e in events {
            switch e.kind {
            case .option(let h, _):
                optionsLeft -= 1
                let (reply, close) = OwnOptionReply.refusal(h.option, reason: reason)
                guard let reply else {
                    context.close(promise: nil)
                    return
                }
                send(reply, context, thenClose: close || optionsLeft <= 0)
                if close { return }
            case .violation(let v) where v.fatal:
                context.close(promise: nil)
                return
            case .serverGreeting, .clientFlags, .optionReply, .exportNameReply, .transmissionStarted, .request,
                 .simpleReply, .replyChunk, .payload, .completed, .tlsStarted, .opaque, .violation, .compliance,
                 .gap, .skipped, .closed:
                break
            }
        }
        context.read()
    }

    /// Writes bytes of nbdtap's own to the client, telling the decoder what the client saw.
    func send(_ bytes: ByteBuffer, _ context: ChannelHandlerContext, thenClose: Bool = false) {
        var ignored: [ConversationEvent] = []
        decoder.feed(.serverToClient, bytes, at: 0, into: &ignored)
        let written = context.writeAndFlush(wrapOutboundOut(bytes))
        if thenClose { written.whenComplete { _ in context.close(promise: nil) } }
    }
}
