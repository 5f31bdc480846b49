import NBDReport
import NIOConcurrencyHelpers

/// Statistics of every connection the proxy served, merged as each one closes.
public final class StatsRegistry: @unchecked Sendable {
    let lock = NIOLock()
    var total = ConnectionStats()
    var perConnection = PerConnectionStats()

    public init() {}

    func add(_ connection: Int, _ stats: ConnectionStats) {
        lock.withLock {
            total.merge(stats)
            perConnection.append(connection, stats)
        }
    }

    public func snapshot() -> (ConnectionStats, [(Int, ConnectionStats)]) {
        lock.withLock { (total, perConnection.kept) }
    }

    public func render(_ format: StatsFormat) -> String {
        render(format, open: [])
    }

    /// The statistics with those of connections still open (`open`, by connection) merged
    /// in: what SIGUSR1 and `--stats-interval` print while the proxy runs.
    public func render(_ format: StatsFormat, open: [(Int, ConnectionStats)]) -> String {
        var (t, per) = snapshot()
        for (_, s) in open { t.merge(s) }
        per = (per + open).sorted { $0.0 < $1.0 }
        let omitted = lock.withLock { perConnection.omitted }
        switch format {
        case .text: return StatsFormatter.text(total: t, perConnection: per, omitted: omitted)
        case .json: return StatsFormatter.json(total: t, perConnection: per, omitted: omitted) + "\n"
        }
    }
}
