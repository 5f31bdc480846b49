import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif

/// Where log lines go: a file or standard output, shared by every connection. Lines are
/// gathered under a lock and written in batches, so logging costs one syscall per batch
/// rather than per request; `flush()` runs on a timer and at exit.
public final class LogSink: @unchecked Sendable {
    let fd: Int32
    let ownsFD: Bool
    let lock = NIOLock()
    let flushLock = NIOLock()
    var buffer: [UInt8] = []
    /// The buffer being written out, swapped with `buffer` so neither is reallocated.
    var spare: [UInt8] = []
    /// Write when this much is gathered even before the timer fires.
    let threshold = 256 * 1024

    public init(fd: Int32, ownsFD: Bool) {
        self.fd = fd
        self.ownsFD = ownsFD
        buffer.reserveCapacity(threshold)
        spare.reserveCapacity(threshold)
    }

    /// Opens `path` for appending, or standard output for `-`.
    public static func open(_ path: String) throws -> LogSink {
        if path == "-" { return LogSink(fd: 1, ownsFD: false) }
        // 0600, as the pcap: a log names exports, offsets and errors of the host's disks.
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SinkError.open(path: path, errno: errno) }
        return LogSink(fd: fd, ownsFD: true)
    }

    public enum SinkError: Error, CustomStringConvertible {
        case open(path: String, errno: Int32)
        public var description: String {
            switch self {
            case .open(let path, let e): return "cannot open \(path): \(String(cString: strerror(e)))"
            }
        }
    }

    /// Log lines as bytes (ConnectionLog builds them so), appended under the lock.
    public func write(_ bytes: [UInt8]) {
        var full = false
        lock.withLock {
            buffer.append(contentsOf: bytes)
            full = buffer.count >= threshold
        }
        if full { flush() }
    }

    public func flush() {
        // `spare` belongs to whoever holds flushLock; lines keep going into `buffer`
        // while it is written out.
        flushLock.withLock {
            lock.withLock { swap(&buffer, &spare) }
            writeAll(spare)
            spare.removeAll(keepingCapacity: true)
        }
    }

    private func writeAll(_ out: [UInt8]) {
        guard !out.isEmpty else { return }
        out.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 { if errno == EINTR { continue } else { return } }
                done += n
            }
        }
    }

    public func close() {
        flush()
        if ownsFD { Glibc.close(fd) }
    }
}
