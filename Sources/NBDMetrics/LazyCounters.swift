import NIOConcurrencyHelpers
import Prometheus

/// Counters of one labelled family by key, behind a lock: for the label sets that are
/// bounded but too many to hold as fields (errno by command, the violation codes). Looked
/// up only when such a thing happens (an error, a violation), never per request: the lock
/// is not on the hot path.
final class LazyCounters<Key: Hashable & Sendable>: Sendable {
    let make: @Sendable (Key) -> Counter
    let made = NIOLockedValueBox<[Key: Counter]>([:])

    init(_ make: @escaping @Sendable (Key) -> Counter) { self.make = make }

    func counter(_ key: Key) -> Counter {
        made.withLockedValue { made in
            if let c = made[key] { return c }
            let c = make(key)
            made[key] = c
            return c
        }
    }
}
