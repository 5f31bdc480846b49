#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import NIOPosix

/// Accepts connections on a listening socket of nbdtap's own (Sockets.swift) on one
/// thread, and hands each accepted descriptor on. `stop()` wakes the thread through a
/// pipe, so ending the proxy does not wait for a next client.
final class Acceptor: @unchecked Sendable {
    let listenFD: Int32
    /// The pipe `stop()` writes to: [read end, write end].
    let wakeFDs: [Int32]
    let onAccept: @Sendable (Int32) -> Void
    let onError: @Sendable (String) -> Void
    private let pool = NIOThreadPool(numberOfThreads: 1)
    private let stopped = NIOLockedValueBox(false)
    private let finished = ConditionLock(value: false)

    init(listenFD: Int32, onAccept: @escaping @Sendable (Int32) -> Void, onError: @escaping @Sendable (String) -> Void) {
        self.listenFD = listenFD
        var p: [Int32] = [-1, -1]
        if pipe(&p) == 0 { for fd in p { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) } }
        self.wakeFDs = p
        self.onAccept = onAccept
        self.onError = onError
    }

    func start() {
        pool.start()
        pool.submit { [self] _ in
            run()
            finished.lock()
            finished.unlock(withValue: true)
        }
    }

    private func run() {
        var fds = (pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFDs[0], events: Int16(POLLIN), revents: 0))
        while !stopped.withLockedValue({ $0 }) {
            let n = withUnsafeMutableBytes(of: &fds) { raw in
                poll(raw.baseAddress!.assumingMemoryBound(to: pollfd.self), 2, -1)
            }
            if n < 0 && errno != EINTR {
                onError("poll on the listening socket: \(String(cString: strerror(errno)))")
                return
            }
            if fds.1.revents != 0 { return }
            guard fds.0.revents != 0 else { continue }
            // Glibc's module has no accept4, so close-on-exec follows at once: a command
            // `--run` starts in that instant could inherit the descriptor (and hold the
            // connection open until it exits).
            let fd = accept(listenFD, nil, nil)
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                onAccept(fd)
                continue
            }
            switch errno {
            case EINTR, EAGAIN, ECONNABORTED, EPROTO:
                continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // Out of descriptors or memory: the client waits in the backlog; try again
                // shortly rather than spin.
                onError("accept: \(String(cString: strerror(errno))); retrying in 100 ms")
                usleep(100_000)
            default:
                onError("accept: \(String(cString: strerror(errno)))")
                return
            }
        }
    }

    /// Stops accepting and closes the listening socket; returns once the thread is done.
    func stop() {
        stopped.withLockedValue { $0 = true }
        var one: UInt8 = 1
        _ = write(wakeFDs[1], &one, 1)
        finished.lock(whenValue: true)
        finished.unlock()
        try? pool.syncShutdownGracefully()
        close(listenFD)
        for fd in wakeFDs where fd >= 0 { close(fd) }
    }
}
