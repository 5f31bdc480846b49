import Synchronization

/// A count of bytes over all connections, for the paths that move bytes past NIO (the
/// kernel path, the direct loop): the proof, for tests and for `--stats`' readers who
/// wonder, that a path was taken (the statistics themselves are the same either way).
final class ByteTally: Sendable {
    let total = Atomic<UInt64>(0)

    func add(_ n: UInt64) { total.add(n, ordering: .relaxed) }
    var value: UInt64 { total.load(ordering: .relaxed) }
}
