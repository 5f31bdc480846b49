import NBDConversation
import NBDProtocol
import NBDReport
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// The transparent relay: each accepted client gets its own upstream connection on the
/// same event loop (one loop per connection pair, no cross-thread hops on the data path).
public final class ProxyServer: @unchecked Sendable {
    public let config: ProxyConfiguration
    public let stats = StatsRegistry()
    let sink: LogSink?
    let group: MultiThreadedEventLoopGroup
    let lock = NIOLock()
    var sessions: [Int: ProxySession] = [:]
    var nextID = 1
    var acceptor: Acceptor?
    /// The Unix socket file this proxy bound, removed on exit only if it is still that file.
    var ownSocket: Sockets.FileIdentity?
    /// `--pcap`: records both legs of every connection, when set before `start()`.
    public var pcap: PcapRecorder?
    /// Queue-depth-1 busy-polling shared by all connections (IdlePolling.swift).
    let poller: IdlePoller
    /// `--rate`'s total limits, which every connection takes from.
    let sharedRate: SharedRateBuckets?
    /// `--disconnect-after ... times=K`: the cuts left.
    let disconnects: DisconnectBudget
    /// TLS termination's credentials and library, when `config.tls` is active (set before
    /// `start()`; nbdtap's command line gives NBDTLS's SwiftNIOSSLProvider).
    public var tlsProvider: TLSProvider?
    /// Called with the text of each connection's statistics when it closes.
    /// Called as each connection closes: its number, statistics, and why nbdtap closed it
    /// (nil when a peer simply hung up).
    public var onConnectionClosed: (@Sendable (Int, ConnectionStats, String?) -> Void)?

    /// Payload bytes moved socket to socket in the kernel, over all connections so far.
    public var bytesSpliced: UInt64 { splicedBytes.value }
    let splicedBytes = ByteTally()
    /// Bytes the direct loop relayed (RelayHandler+Direct.swift), over all connections so far.
    public var bytesRelayedDirectly: UInt64 { directBytes.value }
    let directBytes = ByteTally()

    public init(config: ProxyConfiguration, sink: LogSink?, threads: Int = System.coreCount) {
        self.config = config
        self.sink = sink
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        self.poller = IdlePoller(windowMicroseconds: config.idlePollMicroseconds)
        self.sharedRate = config.policy.rate.map { SharedRateBuckets($0) }
        self.disconnects = DisconnectBudget(times: config.policy.disconnect?.times)
    }

    /// Socket tuning shared by both legs: large reads (payloads move in big slices; at
    /// least 64 KiB so a 4 KiB write and its header arrive in one read, which measured
    /// +8% IOPS for 4 KiB random writes at queue depth 1 against a 4 KiB minimum),
    /// write buffers bounded by watermarks (the backpressure threshold), manual reads.
    static let recvAllocator = AdaptiveRecvByteBufferAllocator(minimum: 64 * 1024, initial: 256 * 1024, maximum: 1024 * 1024)
    static let watermark = ChannelOptions.Types.WriteBufferWaterMark(low: 256 * 1024, high: 1024 * 1024)

    /// A bootstrap for one of nbdtap's own sockets, with the tuning both legs share.
    static func bootstrap(_ loop: EventLoopGroup) -> ClientBootstrap {
        ClientBootstrap(group: loop)
            .channelOption(.autoRead, value: false)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.recvAllocator, value: recvAllocator)
            .channelOption(.writeBufferWaterMark, value: watermark)
    }

    static func isTCP(_ ch: Channel) -> Bool {
        switch ch.localAddress {
        case .v4, .v6: return true
        case .unixDomainSocket, .none: return false
        }
    }

    /// Binds the listening socket; returns the bound endpoint (the real port for port 0).
    /// The socket is nbdtap's own (Sockets.swift) so that each accepted descriptor is
    /// known to the idle poller; NIO does the I/O once the descriptor is handed to it.
    @discardableResult
    public func start() throws -> NBDURI.Endpoint {
        let (fd, bound) = try Sockets.listen(config.listen, backlog: 256)
        if case .unix(let path) = config.listen { ownSocket = Sockets.FileIdentity(path: path) }
        let acceptor = Acceptor(listenFD: fd, onAccept: { [unowned self] client in self.adopt(client) },
                                onError: { message in
                                    var line = "nbdtap: \(message)\n"
                                    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
                                })
        self.acceptor = acceptor
        acceptor.start()
        return bound
    }

    /// Registers an accepted client socket with one of the event loops.
    func adopt(_ fd: Int32) {
        Sockets.enlargeUnixBuffers(fd)
        Self.bootstrap(group.next())
            .channelInitializer { [unowned self] ch in self.accept(ch, descriptor: fd) }
            .withConnectedSocket(fd)
            .whenFailure { error in
                var line = "nbdtap: cannot serve an accepted connection: \(error)\n"
                line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
            }
    }

    func accept(_ client: Channel, descriptor clientFD: Int32) -> EventLoopFuture<Void> {
        let id: Int = lock.withLock {
            defer { nextID += 1 }
            return nextID
        }
        let session = ProxySession(id: id, client: client, logFormat: config.logFormat, sink: sink, stats: stats,
                                  halfCloseSeconds: config.halfCloseSeconds) { [weak self] s in
            guard let self else { return }
            self.lock.withLock { _ = self.sessions.removeValue(forKey: s.id) }
            self.poller.connections.subtract(1, ordering: .relaxed)
            self.config.lifecycle?.connectionClosed(s.id)
            self.onConnectionClosed?(s.id, s.tap.stats, s.closeReason)
        }
        if !config.policy.isTransparent || config.tls.isActive {
            session.engine = PolicyEngine(chain: config.policy, tls: config.tls) { [weak self] in self?.disconnects.claim() ?? false }
            session.tls = tlsProvider
        }
        session.tap.observer = config.observer
        let recording = pcap?.connection(id, loop: client.eventLoop)
        if let cutter = recording?.cutter {
            session.tap.observer = ObserverGroup.combining([config.observer, cutter].compactMap { $0 })
        }
        config.lifecycle?.connectionOpened(id)
        if let rate = config.policy.rate { session.shaper = RateShaper(rate, shared: sharedRate) }
        poller.connections.add(1, ordering: .relaxed)
        if poller.enabled { session.poller = poller }
        session.recording = recording
        session.splicing = config.splicePayloads && (recording?.allowsKernelPath ?? true)
        session.direct = config.directRelay
        session.directBytes = directBytes
        session.splicedBytes = splicedBytes
        session.clientDescriptor = clientFD
        lock.withLock { sessions[id] = session }
        let clientSide = RelayHandler(direction: .clientToServer, session: session)
        let upstreamSide = RelayHandler(direction: .serverToClient, session: session)
        clientSide.partner = upstreamSide
        upstreamSide.partner = clientSide
        session.clientHandler = clientSide
        session.upstreamHandler = upstreamSide
        // The upstream connection starts once the client's channel is active: reads
        // issued before the child channel is registered would be lost.
        let overLimit = activeConnections > config.maxConnections
        clientSide.onActive = { [unowned self] in
            if overLimit {
                session.refuse("nbdtap: too many connections (--max-connections \(self.config.maxConnections))")
                return
            }
            session.startTimers(handshakeSeconds: self.config.handshakeTimeoutSeconds, idleSeconds: self.config.idleTimeoutSeconds)
            self.connectUpstream(on: client.eventLoop, handler: upstreamSide, recording: recording).whenComplete { result in
                switch result {
                case .success(let (up, upFD)):
                    session.upstream = up
                    session.upstreamDescriptor = upFD
                    if session.closing {
                        up.close(promise: nil)
                        return
                    }
                    clientSide.start()
                    upstreamSide.start()
                case .failure(let error):
                    self.config.lifecycle?.upstreamConnectFailed(id)
                    session.upstreamFailed(error, upstream: NBDURI(endpoint: self.config.upstream).description)
                }
            }
        }
        var handlers: [ChannelHandler] = [clientSide]
        if let recording { handlers.insert(recording.clientLegHandler(), at: 0) }
        let added = client.pipeline.addHandlers(handlers)
        return Self.isTCP(client) ? added.flatMap { client.setOption(.socketOption(.tcp_nodelay), value: 1) } : added
    }

    /// Connects upstream on the thread pool (a TCP connect may take up to 10 s) with a
    /// socket of nbdtap's own, then hands it to the client's event loop.
    func connectUpstream(on loop: EventLoop, handler: RelayHandler, recording: PcapConnection?) -> EventLoopFuture<(Channel, Int32)> {
        let endpoint = config.upstream
        return NIOThreadPool.singleton.runIfActive(eventLoop: loop) {
            try Sockets.connect(endpoint, timeoutMilliseconds: 10_000)
        }.flatMap { fd in
            Sockets.enlargeUnixBuffers(fd)
            return Self.bootstrap(loop)
                .channelInitializer { ch in
                    var handlers: [ChannelHandler] = [handler]
                    if let recording { handlers.insert(recording.upstreamLegHandler(), at: 0) }
                    let added = ch.pipeline.addHandlers(handlers)
                    return Self.isTCP(ch) ? added.flatMap { ch.setOption(.socketOption(.tcp_nodelay), value: 1) } : added
                }
                .withConnectedSocket(fd)
                .map { ($0, fd) }
        }
    }

    public var activeConnections: Int { lock.withLock { sessions.count } }

    /// Requests in flight over all open connections, each read on its own event loop (the
    /// decoder's count is that loop's alone), reported on `loop`: for a metrics scrape,
    /// which must not wait on an event loop.
    public func requestsInFlight(reportingOn loop: EventLoop) -> EventLoopFuture<Int> {
        let open = lock.withLock { Array(sessions.values) }
        let counts = open.map { s in s.eventLoop.submit { s.finished ? 0 : s.tap.decoder.requestsInFlight } }
        return EventLoopFuture.reduce(0, counts, on: loop) { $0 + $1 }
    }

    /// Graceful stop: no new connections; each connection finishes the requests under way
    /// and ends (ProxySession+Drain.swift). Connections still open after `drainSeconds`
    /// are closed, then the log is flushed.
    /// The statistics so far, open connections included, each read on its own event loop
    /// (the decoder's state is that loop's alone). Call from outside the event loops (a
    /// signal handler's queue, a timer): it waits for each loop's answer.
    public func liveStats(_ format: StatsFormat) -> String {
        let open = lock.withLock { Array(sessions.values) }
        var live: [(Int, ConnectionStats)] = []
        for s in open {
            let answer = s.eventLoop.submit { s.finished ? nil : (s.id, s.tap.stats) }
            if let r = try? answer.wait() { live.append(r) }
        }
        return stats.render(format, open: live)
    }

    public func shutdown() {
        acceptor?.stop()
        acceptor = nil
        for s in lock.withLock({ Array(sessions.values) }) { s.eventLoop.execute { s.drain() } }
        let deadline = wallClockNanoseconds() + UInt64(config.drainSeconds * 1e9)
        while activeConnections > 0 && wallClockNanoseconds() < deadline { usleep(5_000) }
        let reason = "still open after the \(config.drainSeconds) s drain period"
        for s in lock.withLock({ Array(sessions.values) }) { s.eventLoop.execute { s.close(reason: reason) } }
        let closeDeadline = wallClockNanoseconds() + 2_000_000_000
        while activeConnections > 0 && wallClockNanoseconds() < closeDeadline { usleep(5_000) }
        try? group.syncShutdownGracefully()
        sink?.flush()
        // Only the socket this proxy made: another server may have replaced it since.
        if case .unix(let path) = config.listen, let own = ownSocket, Sockets.FileIdentity(path: path) == own { unlink(path) }
    }

    /// Flushes the log every 100 ms so `tail -f` keeps up without a syscall per line.
    public func startLogFlusher() {
        guard let sink else { return }
        group.next().scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { _ in sink.flush() }
    }
}
