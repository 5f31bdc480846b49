import CSplice
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif

/// The one pcap file every event loop writes its batches into. A batch holds whole packets
/// and is written under the lock in one go, so packets never interleave mid-record and
/// each connection's packets (all made on one loop, batched in order) stay in order.
/// The write happens on the event loop that filled the batch: a disk slower than the relay
/// slows that loop down instead of letting batches queue without limit.
final class PcapFile: @unchecked Sendable {
    let path: String
    let fd: Int32
    let lock = NIOLock()
    /// The first write error; recording stops there (the relay goes on).
    private var failedErrno: Int32 = 0
    /// Whether payloads may be spliced into the file from a pipe: a regular file (into a
    /// FIFO or a terminal, splice from nbdtap's non-blocking pipes would not wait for room
    /// as write(2) does); false also once splice(2) refused it. Otherwise they are copied
    /// through `scratch`.
    private(set) var takesSplices: Bool
    /// For payloads copied out of a pipe (or thrown away) instead of spliced.
    private var scratch: UnsafeMutableRawBufferPointer?

    init(path: String) throws(PcapRecorder.OpenError) {
        self.path = path
        // 0600: the capture holds every byte of block data that crossed the proxy.
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PcapRecorder.OpenError(path: path, errno: errno) }
        var st = stat()
        takesSplices = fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    deinit { scratch?.deallocate() }

    /// The global header, as tcpdump writes it: microsecond timestamps, DLT_NULL (the BSD
    /// loopback header: a 4-byte address family in host order), and the snapshot length.
    func writeHeader(snaplen: Int?) {
        var header = [UInt8](repeating: 0, count: 24)
        header.withUnsafeMutableBytes { p in
            p.storeBytes(of: UInt32(0xa1b2_c3d4), toByteOffset: 0, as: UInt32.self)
            p.storeBytes(of: UInt16(2), toByteOffset: 4, as: UInt16.self)
            p.storeBytes(of: UInt16(4), toByteOffset: 6, as: UInt16.self)
            p.storeBytes(of: UInt32(snaplen ?? Int(UInt32.max)), toByteOffset: 16, as: UInt32.self)
            p.storeBytes(of: UInt32(0), toByteOffset: 20, as: UInt32.self)
            write(UnsafeRawBufferPointer(p))
        }
    }

    /// Writes one batch of whole packets; after the first failure, drops them.
    func write(_ bytes: UnsafeRawBufferPointer) {
        lock.withLock { writeLocked(bytes) }
    }

    /// Writes `bytes` (a batch ending in a packet's headers), then that packet's payload:
    /// the `count` bytes at the head of `pipe`, which are always taken out of it (spliced,
    /// copied, or after a failure thrown away), so the pipe is empty for its next use.
    func write(_ bytes: UnsafeRawBufferPointer, thenFromPipe pipe: Int32, count: Int) {
        lock.withLock {
            writeLocked(bytes)
            var left = count
            while left > 0 && failedErrno == 0 && takesSplices {
                let n = nbdtap_splice(pipe, fd, left)
                if n > 0 {
                    left -= n
                } else if n < 0 && errno == EINTR {
                    continue
                } else if n < 0 && (errno == EINVAL || errno == ENOSYS) {
                    takesSplices = false
                } else {
                    failed(n < 0 ? errno : EIO)
                }
            }
            // Copied (the file refused splices) or thrown away (recording stopped).
            takeLocked(left, fromPipe: pipe, writing: true)
        }
    }

    /// Takes `count` bytes out of `pipe` without recording them.
    func discard(fromPipe pipe: Int32, count: Int) {
        lock.withLock { takeLocked(count, fromPipe: pipe, writing: false) }
    }

    /// Reads `count` bytes out of `pipe` through `scratch`, writing them to the file when
    /// `writing` (`writeLocked` drops them once recording stopped).
    private func takeLocked(_ count: Int, fromPipe pipe: Int32, writing: Bool) {
        var left = count
        while left > 0 {
            let room = scratchBuffer()
            let n = read(pipe, room.baseAddress, min(left, room.count))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }  // cannot happen: the pipe holds the bytes
            if writing { writeLocked(UnsafeRawBufferPointer(rebasing: room[0..<n])) }
            left -= n
        }
    }

    private func scratchBuffer() -> UnsafeMutableRawBufferPointer {
        if let scratch { return scratch }
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        scratch = b
        return b
    }

    private func writeLocked(_ bytes: UnsafeRawBufferPointer) {
        guard failedErrno == 0, var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = Glibc.write(fd, p, left)
            if n < 0 {
                if errno == EINTR { continue }
                failed(errno)
                return
            }
            p += n
            left -= n
        }
    }

    private func failed(_ e: Int32) {
        failedErrno = e
        // Said at once: a full disk should not go unnoticed until exit.
        var line = "nbdtap: --pcap \(path): \(String(cString: strerror(e))); recording stopped, relaying goes on\n"
        line.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }

    /// Closes the file; the first write error, if there was one.
    func close() throws(PcapRecorder.OpenError) {
        let e = lock.withLock { failedErrno }
        if Glibc.close(fd) != 0 && e == 0 { throw PcapRecorder.OpenError(path: path, errno: errno) }
        if e != 0 { throw PcapRecorder.OpenError(path: path, errno: e) }
    }
}
