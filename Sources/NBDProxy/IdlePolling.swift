#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import Synchronization

/// Busy-polling between messages when a connection runs one request at a time.
///
/// Why: at queue depth 1 every request crosses the proxy twice, and each crossing used to
/// put the event loop thread to sleep in epoll_wait and wake it again. On this kind of
/// machine (2 vCPUs) a sleep and a wake cost more than the relaying: a C relay measured
/// 0.55 of a direct connection's IOPS blocking, and 0.9-1.0 when it polled its two sockets
/// for up to 200 us before blocking. qemu-nbd's adaptive polling is the same idea.
///
/// When: only while the connection has at most one request in flight (queue depth 1:
/// deeper queues keep the loop busy anyway, and a spinning thread then takes the CPU the
/// client and server need: the C relay lost 40% at depth 32 when it always polled), only
/// while the peers answer within the window (a slow or idle peer turns it off until a
/// gap shorter than the window is seen again), on at most (cores - 1) threads at once, and
/// only while the proxy has no more connections open than that: with more, other
/// connections' clients and servers want the CPU (nbdcopy writing over 4 connections keeps
/// some of them at one request in flight, and polling there cost 13% of its throughput).
final class IdlePoller: Sendable {
    let windowNanoseconds: UInt64
    let maxSpinners: Int
    private let spinners = Atomic<Int>(0)
    /// Connections open in the proxy (ProxyServer counts them in and out).
    let connections = Atomic<Int>(0)
    /// Counts the tests read: polls that saw input arrive, polls whose window passed, and
    /// polls not made (every slot taken, or more connections open than slots).
    let arrivals = Atomic<Int>(0)
    let timeouts = Atomic<Int>(0)
    let skipped = Atomic<Int>(0)

    init(windowMicroseconds: Int, cores: Int = System.coreCount) {
        self.windowNanoseconds = UInt64(max(0, windowMicroseconds)) * 1000
        self.maxSpinners = max(0, cores - 1)
    }

    var enabled: Bool { windowNanoseconds > 0 && maxSpinners > 0 }

    /// Spins until one of the two sockets has input (or an error or hang-up, which the
    /// event loop then handles) or the window has passed. Returns true when input came,
    /// false when the window passed (the peers are slower than it), and nil when nothing
    /// was waited for (every polling slot taken, or more connections open than slots).
    func waitForInput(_ a: Int32, _ b: Int32) -> Bool? {
        guard take() else {
            skipped.add(1, ordering: .relaxed)
            return nil
        }
        defer { spinners.subtract(1, ordering: .releasing) }
        var fds = (pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0))
        let start = monotonicNanoseconds()
        return withUnsafeMutableBytes(of: &fds) { raw -> Bool in
            let p = raw.baseAddress!.assumingMemoryBound(to: pollfd.self)
            while true {
                if poll(p, 2, 0) != 0 {
                    arrivals.add(1, ordering: .relaxed)
                    return true
                }
                if monotonicNanoseconds() &- start > windowNanoseconds {
                    timeouts.add(1, ordering: .relaxed)
                    return false
                }
                // The spin only uses a core no one else wants: a client or server thread
                // waiting for this core runs now (a copy's client, busy with its own
                // work, kept one request in flight and lost CPU to the spin).
                sched_yield()
            }
        }
    }

    /// Whether a connection could spin now (slots may still all be taken).
    var mightSpin: Bool { enabled && connections.load(ordering: .relaxed) <= maxSpinners }

    /// A polling slot for a spin of the caller's own (the direct loop's); `release()` gives it back.
    func claim() -> Bool { enabled && take() }
    func release() { spinners.subtract(1, ordering: .releasing) }

    private func take() -> Bool {
        guard connections.load(ordering: .relaxed) <= maxSpinners else { return false }
        var current = spinners.load(ordering: .relaxed)
        while current < maxSpinners {
            let (exchanged, original) = spinners.compareExchange(expected: current, desired: current + 1, ordering: .acquiring)
            if exchanged { return true }
            current = original
        }
        return false
    }
}

/// One connection's side of the polling decision.
struct IdlePollState {
    /// False after the peers were slower than the window; true again after a quick answer.
    var quick = true
    /// When the loop last went back to epoll_wait without polling (0: it polled, or is busy).
    var sleptAt: UInt64 = 0

    /// Called on every read: a gap shorter than the window turns polling back on.
    mutating func input(window: UInt64) {
        if sleptAt != 0 {
            quick = monotonicNanoseconds() &- sleptAt < window
            sleptAt = 0
        }
    }
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
