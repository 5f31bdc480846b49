import NBDEmulation
import NIOConcurrencyHelpers

/// `--rate` carried out: the token buckets of one connection and the total ones all
/// connections share (behind a lock: connections run on different event loops). The
/// relay tells it how many bytes it just read from a side; the answer is how long to
/// wait before reading that side again.
final class RateShaper {
    var buckets: [(RateLayer.Way, TokenBucket)] = []
    let shared: SharedRateBuckets?

    init(_ layer: RateLayer, shared: SharedRateBuckets?) {
        let now = monotonicNanoseconds()
        for l in layer.limits where l.scope == .connection {
            buckets.append((l.way, TokenBucket(bytesPerSecond: l.bytesPerSecond, burstSeconds: layer.burstSeconds, now: now)))
        }
        self.shared = shared
    }

    /// Nanoseconds to wait after `bytes` were read in `direction` (writes are the
    /// client's bytes, reads the server's).
    func take(_ bytes: Int, reading fromClient: Bool) -> UInt64 {
        guard bytes > 0 else { return 0 }
        let now = monotonicNanoseconds()
        var wait: UInt64 = 0
        for i in buckets.indices where RateShaper.applies(buckets[i].0, fromClient) {
            wait = max(wait, buckets[i].1.take(bytes, now: now))
        }
        if let shared { wait = max(wait, shared.take(bytes, reading: fromClient, now: now)) }
        return wait
    }

    static func applies(_ way: RateLayer.Way, _ fromClient: Bool) -> Bool {
        switch way {
        case .both: return true
        case .write: return fromClient
        case .read: return !fromClient
        }
    }
}

/// The total buckets of `--rate`, one set per proxy.
final class SharedRateBuckets: @unchecked Sendable {
    let lock = NIOLock()
    var buckets: [(RateLayer.Way, TokenBucket)] = []

    init(_ layer: RateLayer) {
        let now = monotonicNanoseconds()
        for l in layer.limits where l.scope == .total {
            buckets.append((l.way, TokenBucket(bytesPerSecond: l.bytesPerSecond, burstSeconds: layer.burstSeconds, now: now)))
        }
    }

    func take(_ bytes: Int, reading fromClient: Bool, now: UInt64) -> UInt64 {
        lock.withLock {
            var wait: UInt64 = 0
            for i in buckets.indices where RateShaper.applies(buckets[i].0, fromClient) {
                wait = max(wait, buckets[i].1.take(bytes, now: now))
            }
            return wait
        }
    }
}

/// `--disconnect-after ... times=K`: how many connections may still be cut (nil: all).
final class DisconnectBudget: @unchecked Sendable {
    let lock = NIOLock()
    var left: UInt64?

    init(times: UInt64?) { left = times }

    func claim() -> Bool {
        lock.withLock {
            guard let n = left else { return true }
            guard n > 0 else { return false }
            left = n - 1
            return true
        }
    }
}
