/// `--rate 10M`, `--rate connection=4M,read=...`: the bytes nbdtap relays are held to a
/// rate, in total over all connections and per connection, both directions together or
/// reads (server to client) and writes (client to server) apart: nbdkit's rate filter's
/// `rate`, `connection-rate`, `read-rate`, `write-rate`, `connection-read-rate` and
/// `connection-write-rate`, in bytes per second where nbdkit counts bits. The relay
/// stops reading a side while its buckets are empty; the bytes already read go on.
public struct RateLayer: Hashable, Sendable {
    public enum Scope: String, Hashable, Sendable, CaseIterable {
        case total = "", connection = "connection-"
    }
    public enum Way: String, Hashable, Sendable, CaseIterable {
        case both = "", read = "read", write = "write"
    }
    public struct Limit: Hashable, Sendable {
        public var scope: Scope
        public var way: Way
        public var bytesPerSecond: UInt64

        public init(scope: Scope, way: Way, bytesPerSecond: UInt64) {
            self.scope = scope
            self.way = way
            self.bytesPerSecond = bytesPerSecond
        }
    }

    public var limits: [Limit]
    /// Seconds of traffic a bucket may save up (nbdkit's `burstiness`, default 2 s there).
    public var burstSeconds: Double

    public init(limits: [Limit], burstSeconds: Double = 0.1) {
        self.limits = limits
        self.burstSeconds = burstSeconds
    }

    /// Keys: a bare RATE or `total=`, `connection=`, `read=`, `write=`, `connection-read=`,
    /// `connection-write=`, and `burstiness=SECONDS`.
    public init(spec: String) throws(LayerOptionError) {
        let bad = LayerOptionError(option: "--rate", value: spec,
                                   expected: "RATE in bytes per second (e.g. 10M) or items total=, connection=, read=, write=, connection-read=, connection-write=, burstiness=SECONDS")
        var limits: [Limit] = []
        var burst = 0.1
        for (key, value) in LayerValues.pairs(spec) {
            if key == "burstiness" {
                guard let ns = LayerValues.duration(value), ns > 0 else { throw bad }
                burst = Double(ns) / 1e9
                continue
            }
            let name = key == "total" ? "" : key
            var found: Limit?
            for scope in Scope.allCases {
                for way in Way.allCases {
                    let spelled = way == .both ? String(scope.rawValue.dropLast()) : scope.rawValue + way.rawValue
                    if spelled == name, let rate = LayerValues.size(value), rate > 0 {
                        found = Limit(scope: scope, way: way, bytesPerSecond: rate)
                    }
                }
            }
            guard let found else { throw bad }
            limits.append(found)
        }
        guard !limits.isEmpty else { throw bad }
        self.init(limits: limits, burstSeconds: burst)
    }
}

/// One token bucket: `rate` bytes per second, at most `capacity` saved up. Taking more
/// than there is drives it negative; `wait` then says how long until it is back at zero,
/// which is when the relay may read again.
public struct TokenBucket: Hashable, Sendable {
    public let rate: Double
    public let capacity: Double
    var tokens: Double
    var updated: UInt64

    public init(bytesPerSecond: UInt64, burstSeconds: Double, now: UInt64) {
        rate = Double(bytesPerSecond)
        capacity = max(Double(bytesPerSecond) * burstSeconds, 1)
        tokens = 0
        updated = now
    }

    mutating func refill(_ now: UInt64) {
        if now > updated {
            tokens = min(capacity, tokens + Double(now - updated) / 1e9 * rate)
            updated = now
        }
    }

    /// Takes `bytes`; returns the nanoseconds to wait before taking more (0: none).
    public mutating func take(_ bytes: Int, now: UInt64) -> UInt64 {
        refill(now)
        tokens -= Double(bytes)
        return tokens >= 0 ? 0 : UInt64((-tokens / rate * 1e9).rounded(.up))
    }
}
