import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// The HTTP/1 server of `--metrics`, on an event loop of its own so that a scrape never
/// runs on a connection's loop. Bounded: `maxConnections` at once (more are closed at
/// once), `RequestBudget.limit` bytes per request, idle connections closed after
/// `idleSeconds`.
public final class MetricsEndpoint: Sendable {
    public static let maxConnections = 16
    static let idleSeconds: Int64 = 300

    let group: MultiThreadedEventLoopGroup
    let channel: any Channel
    public let address: MetricsAddress
    /// The port bound (the real one for port 0).
    public let port: Int

    /// `http://host:port/metrics`.
    public var url: String { "http://\(address.authority(port: port))/metrics" }

    init(group: MultiThreadedEventLoopGroup, channel: any Channel, address: MetricsAddress, port: Int) {
        self.group = group
        self.channel = channel
        self.address = address
        self.port = port
    }

    /// Binds `address` and serves `registry` until `close()`; `beforeScrape` (run on the
    /// endpoint's loop, its future completed before the text is made) sets what is read
    /// at scrape time rather than counted (requests in flight).
    public static func start(_ address: MetricsAddress, registry: PrometheusCollectorRegistry,
                             beforeScrape: (@Sendable (EventLoop) -> EventLoopFuture<Void>)? = nil) throws -> MetricsEndpoint {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let open = NIOLockedValueBox(0)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 32)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { ch in
                let admitted = open.withLockedValue { n -> Bool in
                    guard n < maxConnections else { return false }
                    n += 1
                    return true
                }
                guard admitted else { return ch.close() }
                ch.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
                return ch.eventLoop.makeCompletedFuture {
                    let budget = RequestBudget()
                    let sync = ch.pipeline.syncOperations
                    try sync.addHandler(RequestBudgetHandler(budget))
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(IdleStateHandler(allTimeout: .seconds(idleSeconds)))
                    try sync.addHandler(MetricsHTTPHandler(registry: registry, budget: budget, beforeScrape: beforeScrape))
                }
            }
        do {
            let channel = try bootstrap.bind(host: address.host, port: address.port).wait()
            return MetricsEndpoint(group: group, channel: channel, address: address, port: channel.localAddress?.port ?? address.port)
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
    }

    /// Stops listening and closes the connections (the proxy is exiting).
    public func close() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}
