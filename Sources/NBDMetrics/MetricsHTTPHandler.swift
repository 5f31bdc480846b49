import NIOCore
import NIOHTTP1
import Prometheus

/// One HTTP/1 connection of the metrics endpoint: GET (or HEAD) /metrics is the registry's
/// text, any other path 404, any other method on it 405. Keep-alive as the client asks
/// (Prometheus keeps its scrape connection); NIO's pipeline handler orders pipelined
/// requests, so this handler sees one at a time.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    let registry: PrometheusCollectorRegistry
    let budget: RequestBudget
    let beforeScrape: (@Sendable (EventLoop) -> EventLoopFuture<Void>)?
    var head: HTTPRequestHead?
    /// The last scrape's text, its capacity kept for the next.
    var text: [UInt8] = []

    init(registry: PrometheusCollectorRegistry, budget: RequestBudget, beforeScrape: (@Sendable (EventLoop) -> EventLoopFuture<Void>)?) {
        self.registry = registry
        self.budget = budget
        self.beforeScrape = beforeScrape
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
        case .body:
            // Ignored; its bytes count against the request's budget.
            break
        case .end:
            budget.reset()
            guard let h = head else { return }
            head = nil
            let isScrape = Self.isMetricsPath(h.uri) && (h.method == .GET || h.method == .HEAD)
            guard isScrape, let beforeScrape else {
                respond(to: h, context: context)
                return
            }
            // Answers stay in order: NIO's pipelining handler holds the next request
            // until this one's response ends.
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            beforeScrape(context.eventLoop).whenComplete { _ in
                let (handler, context) = bound.value
                handler.respond(to: h, context: context)
            }
        }
    }

    /// `/metrics`, with or without a query.
    static func isMetricsPath(_ uri: String) -> Bool {
        (uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "") == "/metrics"
    }

    func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        let status: HTTPResponseStatus
        var body = context.channel.allocator.buffer(capacity: 0)
        if !Self.isMetricsPath(request.uri) {
            status = .notFound
            body.writeString("not found: the metrics are at /metrics\n")
        } else if request.method == .GET || request.method == .HEAD {
            status = .ok
            text.removeAll(keepingCapacity: true)
            registry.emit(into: &text)
            body.writeBytes(text)
        } else {
            status = .methodNotAllowed
            headers.add(name: "Allow", value: "GET, HEAD")
            body.writeString("method not allowed: GET /metrics\n")
        }
        headers.add(name: "Content-Type", value: status == .ok ? Self.contentType : "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        let keepAlive = request.isKeepAlive
        switch (keepAlive, request.version.major, request.version.minor) {
        case (false, _, _): headers.add(name: "Connection", value: "close")
        case (true, 1, 0): headers.add(name: "Connection", value: "keep-alive")
        case (true, _, _): break
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// An idle keep-alive connection is closed after a while (IdleStateHandler): with a
    /// small connection limit, idle ones must not hold the endpoint.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
