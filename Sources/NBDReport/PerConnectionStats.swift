/// Per-connection statistics kept for a report, bounded: a proxy in front of a VM for a day
/// sees hundreds of thousands of connections, and each connection's statistics hold latency
/// histograms of up to some hundred kilobytes (measured: 300 MiB for 1,000 connections of the
/// soak test). The most recent `limit` are kept; older ones are counted as
/// omitted (the caller's total still includes them).
public struct PerConnectionStats: Sendable {
    public let limit: Int
    public private(set) var omitted = 0
    var entries: [(Int, ConnectionStats)] = []
    var head = 0

    public init(limit: Int = 100) { self.limit = limit }

    public mutating func append(_ connection: Int, _ stats: ConnectionStats) {
        entries.append((connection, stats))
        if entries.count - head > limit {
            head += 1
            omitted += 1
            if head > 1024 && head * 2 > entries.count {
                entries.removeFirst(head)
                head = 0
            }
        }
    }

    /// The kept entries, by connection number.
    public var kept: [(Int, ConnectionStats)] { entries[head...].sorted { $0.0 < $1.0 } }
}
