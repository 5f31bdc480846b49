import NBDConversation
import NBDProtocol
import NBDReport
import NIOCore
import NIOPosix

/// Runs a replay: reads the recording a step at a time on one event loop, hands each
/// recorded connection's items to its `ReplayConnection`, starts connections in their
/// recorded order (after the connections that had ended before they began; at their
/// recorded relative start under `--timing original|scale=`), and pauses reading while
/// more than `maxQueuedBytes` wait to be sent. Confined to its event loop.
public final class ReplayDriver: @unchecked Sendable {
    public let configuration: ReplayConfiguration
    let reader: RecordingReader
    let group: MultiThreadedEventLoopGroup
    let loop: EventLoop
    var connections: [Int: ReplayConnection] = [:]
    /// Connections whose recording has ended and whose replay has not.
    var endedInRecording: Set<Int> = []
    var readingDone = false
    var readingScheduled = false
    var queuedBytes = 0
    var firstRecordedTime: UInt64?
    var firstRequestTime: UInt64 = .max
    var lastRequestTime: UInt64 = 0
    var startUptime: UInt64 = 0
    var stopping: String?
    var report = ReplayReport()
    public private(set) var total = ConnectionStats()
    var perConnection = PerConnectionStats()
    let done: EventLoopPromise<Void>
    /// Receives the replayed sessions' log text, in order, on the event loop.
    let logSink: ([UInt8]) -> Void

    public struct Stopped: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    public init(configuration: ReplayConfiguration, reader: RecordingReader, logSink: @escaping ([UInt8]) -> Void = { _ in }) {
        self.configuration = configuration
        self.reader = reader
        self.logSink = logSink
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = group.next()
        done = loop.makePromise()
    }

    /// Replays everything; returns the report and the replayed sessions' statistics.
    /// Throws `Stopped` when the replay had to stop (a write without `--allow-writes`).
    public func run() throws -> (report: ReplayReport, total: ConnectionStats, perConnection: [(Int, ConnectionStats)], omitted: Int) {
        defer { try? group.syncShutdownGracefully() }
        loop.execute { [self] in
            startUptime = NIODeadline.now().uptimeNanoseconds
            readSome()
        }
        try done.futureResult.wait()
        let result = try loop.submit { [self] () -> (ReplayReport, ConnectionStats, [(Int, ConnectionStats)], Int, String?) in
            var r = report
            r.elapsedNanoseconds = NIODeadline.now().uptimeNanoseconds - startUptime
            r.connections.sort { $0.number < $1.number }
            if lastRequestTime > firstRequestTime { r.recordedSpanNanoseconds = lastRequestTime - firstRequestTime }
            r.inputProblems = reader.failures.map(\.description)
            r.leftOut = reader.leftOut.map { "connection \($0.connection): \($0.reason)" }
            return (r, total, perConnection.kept, perConnection.omitted, stopping)
        }.wait()
        if let why = result.4 { throw Stopped(reason: why) }
        return (result.0, result.1, result.2, result.3)
    }

    // MARK: Reading

    func readSome() {
        readingScheduled = false
        var steps = 0
        while !readingDone && stopping == nil && queuedBytes < configuration.maxQueuedBytes && steps < 256 {
            if !reader.step() { readingDone = true }
            steps += 1
            for s in reader.takeStarted() {
                if firstRecordedTime == nil { firstRecordedTime = s.time }
                connections[s.connection] = ReplayConnection(number: s.connection, recordedStart: s.time, midSession: s.midSession,
                                                             after: endedInRecording, driver: self)
            }
            for (n, items) in reader.takeItems() {
                guard let c = connections[n] else { continue }
                if !configuration.allowWrites, let w = items.firstWrite {
                    stop("the recording writes (connection \(n), request \(w.id): NBD_CMD_\(w.header.command.name) offset=\(w.header.offset) length=\(w.effectLength)); "
                         + "replaying it would change the upstream's data: give --allow-writes, or --dry-run to see the requests")
                    return
                }
                // The recorded client was done once it sent NBD_CMD_DISC (its server may close
                // a little later, after the next connection has begun).
                if items.contains(where: Self.endsClient) { endedInRecording.insert(n) }
                for case .request(let r) in items {
                    report.recordedRequests += 1
                    firstRequestTime = min(firstRequestTime, r.time)
                    lastRequestTime = max(lastRequestTime, r.time)
                }
                c.enqueue(items)
                start(c)
            }
        }
        checkDone()
        scheduleReading()
    }

    func scheduleReading() {
        guard !readingDone, stopping == nil, !readingScheduled, queuedBytes < configuration.maxQueuedBytes else { return }
        readingScheduled = true
        loop.execute { [self] in readSome() }
    }

    /// Ends the replay early (SIGINT): every connection is closed, what was not sent is
    /// reported so, and `run` returns the report of what was replayed.
    public func interrupt() {
        loop.execute { [self] in
            guard !readingDone || !connections.isEmpty else { return }
            readingDone = true
            report.interrupted = true
            for c in connections.values where c.phase != .done {
                if c.channel == nil { c.recordedEnded = true }
                c.fail("interrupted (SIGINT) before the replay ended")
            }
            checkDone()
        }
    }

    func stop(_ why: String) {
        stopping = why
        for c in connections.values { c.channel?.close(promise: nil) }
        done.succeed(())
    }

    // MARK: Connections

    func start(_ c: ReplayConnection) {
        guard c.readyToStart else { return }
        if case .scaled(let k) = configuration.timing, let first = firstRecordedTime {
            let due = startUptime + UInt64(Double(c.recordedStart > first ? c.recordedStart - first : 0) * k)
            if due > NIODeadline.now().uptimeNanoseconds {
                c.phase = .waiting
                if !c.timerPending {
                    c.timerPending = true
                    loop.scheduleTask(deadline: .uptimeNanoseconds(due)) { [self] in
                        c.timerPending = false
                        connect(c)
                    }
                }
                return
            }
        }
        connect(c)
    }

    func connect(_ c: ReplayConnection) {
        guard c.readyToStart, stopping == nil else { return }
        c.phase = .negotiating  // connecting: not ready to start again
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(.allowRemoteHalfClosure, value: false)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(ReplayHandler(c)) }
            }
        let future: EventLoopFuture<Channel>
        switch configuration.upstream.endpoint {
        case .tcp(let host, let port): future = bootstrap.connect(host: host, port: port)
        case .unix(let path): future = bootstrap.connect(unixDomainSocketPath: path)
        }
        future.whenComplete { [self] result in
            switch result {
            case .success(let ch):
                c.started(ch)
            case .failure(let error):
                c.phase = .waiting
                c.fail("cannot connect to the upstream \(configuration.upstream): \(error)")
            }
            _ = self
        }
    }

    func connectionProgressed(_ c: ReplayConnection) {
        if queuedBytes < configuration.maxQueuedBytes / 2 { scheduleReading() }
    }

    func connectionFinished(_ c: ReplayConnection) {
        flushLog(c)
        total.merge(c.tap.stats)
        perConnection.append(c.number, c.tap.stats)
        endedInRecording.remove(c.number)
        for other in connections.values where other.after.contains(c.number) {
            other.after.remove(c.number)
            start(other)
        }
        scheduleReading()
        checkDone()
    }

    func checkDone() {
        // A connection replayed to its end is reported once its recording has ended too:
        // until then, items of the recording still come, and are counted as not sent.
        for c in connections.values.filter({ $0.phase == .done && $0.recordedEnded }) {
            connections[c.number] = nil
            report.connections.append(c.report)
        }
        guard readingDone, stopping == nil else { return }
        for c in connections.values where c.phase != .done { c.finishIfEnded() }
        if connections.values.allSatisfy({ $0.phase == .done }) {
            for c in connections.values { report.connections.append(c.report) }
            connections = [:]
            done.succeed(())
        }
    }

    func flushLog(_ c: ReplayConnection) {
        guard !c.logText.isEmpty else { return }
        logSink(c.logText)
        c.logText.removeAll(keepingCapacity: true)
    }
}

extension ReplayDriver {
    static func endsClient(_ item: WorkloadItem) -> Bool {
        switch item {
        case .end: return true
        case .request(let r): if case .disc = r.header.command { return true }; return false
        case .negotiation, .outcome, .skipped: return false
        }
    }
}

extension Array where Element == WorkloadItem {
    var firstWrite: RecordedRequest? {
        for item in self { if case .request(let r) = item, r.isWrite { return r } }
        return nil
    }
}

/// Hands one upstream channel's events to its replay connection.
final class ReplayHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let connection: ReplayConnection

    init(_ connection: ReplayConnection) { self.connection = connection }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection.received(unwrapInboundIn(data))
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection.pump()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.inactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if connection.report.problem == nil { connection.report.problem = "upstream connection: \(error)" }
        context.close(promise: nil)
    }
}
