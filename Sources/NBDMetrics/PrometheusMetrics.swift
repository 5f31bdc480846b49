import NBDConversation
import NBDProtocol
import NBDProxy
import NBDReport
import Prometheus

/// `--metrics`: every connection's events, counted as `ConnectionStats` counts them (so a
/// Prometheus server and nbdtap's statistics at exit agree), into swift-prometheus
/// objects made once up front. The hot path is an array index and a few atomic adds per
/// request (and the latency histogram's lock): no registry look-ups, no per-connection
/// or per-request labels. Docs/metrics.md lists each metric and the bounds on its labels.
public final class PrometheusMetrics: ConversationObserver, ProxyLifecycleObserver {
    public let registry = PrometheusCollectorRegistry()

    /// By `CommandLabel` index.
    let requests: [Counter]
    let requestBytes: [Counter]
    let durations: [DurationHistogram]
    let readBytes: Counter
    let writtenBytes: Counter
    /// WRITE_ZEROES without and with NBD_CMD_FLAG_FAST_ZERO.
    let zeroes: (slow: Counter, fast: Counter)
    /// Every (command, errno) and every violation code, made up front (see `init`), so
    /// an error or a violation is a dictionary look-up with no lock.
    let errors: [ErrorKey: Counter]
    let violations: [ProtocolViolation.Code: Counter]
    let inFlight: Gauge
    let connectionsOpen: Gauge
    let connectionsTotal: Counter
    let upstreamFailures: Counter
    struct ErrorKey: Hashable, Sendable {
        var command: Int
        var errno: String
    }

    /// Request latency buckets: 10 us to 10 s, 1-2.5-5 per decade (a memory-backed
    /// nbdkit answers in tens of microseconds, a stalled disk in seconds).
    static let latencyBuckets: [Duration] = {
        var out: [Duration] = []
        var decade: Int64 = 10_000  // 10 us in ns
        while decade < 10_000_000_000 {
            out += [decade, decade * 25 / 10, decade * 5].map { Duration.nanoseconds($0) }
            decade *= 10
        }
        return out + [.seconds(10)]
    }()

    static func d(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "nbdtap", metricName: name, unitName: unit, helpText: help)
    }

    public init() {
        let r = registry
        let d = Self.d
        let requestsName = d("requests", "total", "NBD requests by command, counted as nbdtap's statistics count them (when the request is seen).")
        let bytesName = d("request_bytes", "total", "Bytes the requests act on, by command: data bytes for READ and WRITE, the range for the others.")
        let durationName = d("request_duration", "seconds", "Time from a request to its final reply, by command (replied requests, errors included).")
        let labels = (0..<CommandSeries.count).map { [("command", CommandLabel.name($0))] }
        requests = labels.map { r.makeCounter(descriptor: requestsName, labels: $0) }
        requestBytes = labels.map { r.makeCounter(descriptor: bytesName, labels: $0) }
        durations = labels.map { r.makeDurationHistogram(descriptor: durationName, labels: $0, buckets: Self.latencyBuckets) }
        readBytes = r.makeCounter(descriptor: d("read_bytes", "total", "Bytes READ requests asked for (node_exporter's node_disk_read_bytes_total)."))
        writtenBytes = r.makeCounter(descriptor: d("written_bytes", "total", "Bytes WRITE requests carried (node_exporter's node_disk_written_bytes_total)."))
        let zeroesName = d("write_zeroes", "total", "WRITE_ZEROES requests without (fast=0) and with (fast=1) NBD_CMD_FLAG_FAST_ZERO.")
        zeroes = (r.makeCounter(descriptor: zeroesName, labels: [("fast", "0")]), r.makeCounter(descriptor: zeroesName, labels: [("fast", "1")]))
        // Every error and violation series exists from the start at 0: rate() and
        // increase() see a counter's first increment only if a scrape saw it at 0 before,
        // so a series born at 1 would hide the first EIO of a command for good. The sets
        // are bounded (10 commands x 10 errno names, 22 codes).
        let errorsName = d("request_errors", "total", "Requests answered with an error, or abandoned (errno ENOTCONN), by command and errno name.")
        var errors: [ErrorKey: Counter] = [:]
        for command in 0..<CommandSeries.count {
            for errno in CommandLabel.errnoNames {
                errors[ErrorKey(command: command, errno: errno)] =
                    r.makeCounter(descriptor: errorsName, labels: [("command", CommandLabel.name(command)), ("errno", errno)])
            }
        }
        self.errors = errors
        let violationsName = d("protocol_violations", "total", "Departures from the NBD protocol either peer made, by violation code.")
        violations = Dictionary(uniqueKeysWithValues: ProtocolViolation.Code.allCases.map {
            ($0, r.makeCounter(descriptor: violationsName, labels: [("code", $0.rawValue)]))
        })
        inFlight = r.makeGauge(descriptor: d("requests_in_flight", "", "Requests sent and not yet answered, over all open connections."))
        connectionsOpen = r.makeGauge(descriptor: d("connections_open", "", "Client connections open now."))
        connectionsTotal = r.makeCounter(descriptor: d("connections", "total", "Client connections accepted (refused ones too, as the statistics count them)."))
        upstreamFailures = r.makeCounter(descriptor: d("upstream_connect_failures", "total", "Connections whose upstream connection could not be made."))
    }

    // MARK: ConversationObserver

    public func observe(_ events: [ConversationEvent], connection: Int) {
        for e in events {
            switch e.kind {
            case .request(let r):
                count(r)
            case .completed(let c):
                count(c)
            case .violation(let v):
                violations[v.code]?.increment()
            case .serverGreeting, .clientFlags, .option, .optionReply, .exportNameReply, .transmissionStarted,
                 .simpleReply, .replyChunk, .payload, .tlsStarted, .opaque, .compliance, .gap, .skipped, .closed:
                break
            }
        }
    }

    /// As `CommandStats.count(request:)`: requests and `effectLength` bytes when the
    /// request is seen, and the WRITE_ZEROES fast split.
    @inline(__always)
    func count(_ r: RequestEvent) {
        let i = CommandSeries.index(r.header.command)
        requests[i].increment()
        // The statistics add with wrap-around in UInt64; a length past Int64.max is a
        // broken or hostile client, and the counter takes the most it can.
        let bytes = Int64(clamping: r.effectLength)
        requestBytes[i].increment(by: bytes)
        switch r.header.command {
        case .read: readBytes.increment(by: bytes)
        case .write: writtenBytes.increment(by: bytes)
        case .writeZeroes: (r.header.flags.contains(.fastZero) ? zeroes.fast : zeroes.slow).increment()
        case .disc, .flush, .trim, .cache, .blockStatus, .resize, .unknown: break
        }
    }

    /// As `CommandStats.count(completed:)`: errors by name, ENOTCONN for an abandoned
    /// request, latency of replied ones.
    @inline(__always)
    func count(_ c: CompletedRequest) {
        let i = CommandSeries.index(c.request.command)
        switch c.outcome {
        case .replied:
            if c.error != .ok { errors[ErrorKey(command: i, errno: CommandLabel.errno(c.error))]?.increment() }
            durations[i].record(.nanoseconds(Int64(clamping: c.latencyNanoseconds)))
        case .abandoned:
            errors[ErrorKey(command: i, errno: "ENOTCONN")]?.increment()
        case .noReply:
            break
        }
    }

    /// Requests in flight, set just before each scrape from the decoders' own counts
    /// (`ProxyServer.requestsInFlight`): exact, and nothing on the hot path.
    public func setRequestsInFlight(_ n: Int) { inFlight.set(Double(n)) }

    // MARK: ProxyLifecycleObserver

    public func connectionOpened(_ connection: Int) {
        connectionsTotal.increment()
        connectionsOpen.increment()
    }

    public func connectionClosed(_ connection: Int) {
        connectionsOpen.decrement()
    }

    public func upstreamConnectFailed(_ connection: Int) {
        upstreamFailures.increment()
    }
}
