import NIOCore

/// Bytes one HTTP request may take, head and any body, before the connection is closed:
/// a scrape is a few hundred bytes, and NIO's HTTP decoder keeps a request head whole
/// however long it gets. The counting handler sits before the decoder; the metrics
/// handler starts a new count at each request's end. Both run on the channel's loop.
final class RequestBudget {
    static let limit = 16 * 1024
    var used = 0

    func reset() { used = 0 }
}

/// Counts inbound bytes against the connection's `RequestBudget`; closes when it is spent.
final class RequestBudgetHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let budget: RequestBudget

    init(_ budget: RequestBudget) { self.budget = budget }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        budget.used += unwrapInboundIn(data).readableBytes
        guard budget.used <= RequestBudget.limit else {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }
}
