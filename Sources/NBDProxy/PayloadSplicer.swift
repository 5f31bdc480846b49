#if canImport(Glibc)
import Glibc
#endif
import CSplice
import NBDConversation
import NIOCore

/// Moves payload bytes from one socket to the other inside the kernel: splice(2) from the
/// source socket into a pipe, and from the pipe into the destination socket.
///
/// Why: relaying a large READ or WRITE through user space costs two copies and a buffer
/// per read; the proxy's profile on sequential copies was mostly those copies. Spliced,
/// the pages move by reference (Unix and TCP sockets both splice into a pipe without
/// copying, and recent kernels send pipe pages into a socket without copying too).
///
/// The decoder still sees every byte's place: the caller moves at most the payload the
/// decoder says is ahead (`ConversationDecoder.payloadAhead`) and reports what moved
/// (`passPayload`), so framing, log and statistics are those of the user-space path.
///
/// Both sockets are non-blocking (NIO owns them), so each call moves what is there now
/// and returns; the pipe is always empty again when it returns: bytes the destination
/// could not take are read back out (`leftover`) for NIO to write, so NIO's own queue and
/// backpressure handle a slow receiver, and the pipe can serve both directions.
final class PayloadSplicer {
    let readEnd: Int32
    let writeEnd: Int32
    /// Bytes one splice moves at most: the pipe's size.
    let capacity: Int
    /// The second pipe each pipeful is duplicated into (tee(2)) when a `--pcap` leg records
    /// payload bytes whole: the recording splices them from it into the file.
    let copy: (readEnd: Int32, writeEnd: Int32)?

    /// What one `move` did.
    struct Moved {
        /// Bytes taken from the source (all of them payload: delivered, or in `leftover`).
        var bytes: UInt64 = 0
        /// Bytes the destination did not take; the caller writes them through NIO.
        var leftover: ByteBuffer?
        /// The source had no more bytes for now (EAGAIN), reached EOF, or failed: the
        /// caller goes back to NIO's read, which tells EOF and errors apart.
        var sourceDry = false
        /// splice(2) refused these descriptors (EINVAL, ENOSYS): not worth trying again.
        var unsupported = false
        /// Bytes taken from the source could not be read back out of the pipe: the
        /// destination's stream has a hole, so the connection must end.
        var lost = false
    }

    /// The pipe's size asked for: large enough that one splice moves a whole qemu or
    /// nbdcopy request (256 KiB to 2 MiB) in few calls, within the unprivileged limit
    /// (/proc/sys/fs/pipe-max-size, 1 MiB by default).
    static let pipeSize: Int32 = 1 << 20

    /// nil when the system has no pipe to give (descriptors exhausted), or no copy pipe as
    /// large as the first when `copying`: the connection keeps the user-space path.
    init?(copying: Bool = false) {
        var fds: [Int32] = [-1, -1]
        guard nbdtap_pipe(&fds) == 0 else { return nil }
        readEnd = fds[0]
        writeEnd = fds[1]
        capacity = max(4096, Int(nbdtap_pipe_size(writeEnd, Self.pipeSize)))
        if copying {
            // As large as the first pipe, so a tee of a whole pipeful always fits (the copy
            // pipe is empty before each one).
            var c: [Int32] = [-1, -1]
            guard nbdtap_pipe(&c) == 0 else {
                Glibc.close(readEnd)
                Glibc.close(writeEnd)
                return nil
            }
            guard Int(nbdtap_pipe_size(c[1], Int32(capacity))) >= capacity else {
                for fd in [readEnd, writeEnd, c[0], c[1]] { Glibc.close(fd) }
                return nil
            }
            copy = (c[0], c[1])
        } else {
            copy = nil
        }
        // A socket closed under a splice raises SIGPIPE (sendmsg's MSG_NOSIGNAL is not
        // available to splice); the error is what the relay wants, not the signal.
        _ = Self.ignoreSIGPIPE
    }

    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN); return () }()

    deinit {
        Glibc.close(readEnd)
        Glibc.close(writeEnd)
        if let copy {
            Glibc.close(copy.readEnd)
            Glibc.close(copy.writeEnd)
        }
    }

    /// Moves up to `limit` bytes from `source` to `destination` (direction `d`), as many as
    /// the source has now and the destination takes; the rest of what was taken comes back
    /// as `leftover`. `recording` hears of each pipeful (with its bytes in the copy pipe
    /// when it wants them).
    func move(from source: Int32, to destination: Int32, limit: UInt64, direction d: StreamDirection,
              recording: SpliceRecording?, allocator: ByteBufferAllocator) -> Moved {
        var out = Moved()
        let copy = recording?.wantsContents == true ? self.copy : nil
        while out.bytes < limit {
            let want = Int(min(limit - out.bytes, UInt64(capacity)))
            let n = nbdtap_splice(source, writeEnd, want)
            if n < 0 {
                if errno == EINTR { continue }
                out.unsupported = errno == EINVAL || errno == ENOSYS
                out.sourceDry = true
                return out
            }
            if n == 0 {
                out.sourceDry = true
                return out
            }
            out.bytes += UInt64(n)
            if let copy, let recording, duplicate(n, into: copy.writeEnd) < n {
                // No copy to record from (cannot happen with the pipes' sizes): the bytes
                // come to user space, where the legs record them as NIO relays them.
                _ = drain(copy.readEnd, n, allocator)
                let back = drain(readEnd, n, allocator)
                out.lost = back.readableBytes != n
                recording.read(d, back)
                out.leftover = back
                return out
            }
            var inPipe = n
            while inPipe > 0 {
                let w = nbdtap_splice(readEnd, destination, inPipe)
                if w > 0 {
                    inPipe -= w
                    continue
                }
                if w < 0 && errno == EINTR { continue }
                break
            }
            recording?.moved(d, taken: n, delivered: n - inPipe, contents: copy?.readEnd)
            if inPipe > 0 {
                // The destination is full (EAGAIN) or gone: what it did not take goes
                // back to user space, for NIO to queue, or to fail as any write would.
                let back = drain(readEnd, inPipe, allocator)
                out.lost = back.readableBytes != inPipe
                out.leftover = back
                return out
            }
            // A short splice means the source is empty for now.
            if n < want {
                out.sourceDry = true
                return out
            }
        }
        return out
    }

    /// tee(2)s the `count` bytes in the pipe into `copy`; how many it duplicated.
    private func duplicate(_ count: Int, into copy: Int32) -> Int {
        while true {
            let t = nbdtap_tee(readEnd, copy, count)
            if t < 0 && errno == EINTR { continue }
            return max(t, 0)
        }
    }

    /// Reads `count` bytes out of pipe `fd` (they are there: it holds exactly them).
    private func drain(_ fd: Int32, _ count: Int, _ allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: count)
        var left = count
        while left > 0 {
            var failed = false
            let got = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: left) { raw -> Int in
                let r = read(fd, raw.baseAddress, left)
                if r < 0 && errno != EINTR { failed = true }
                return max(r, 0)
            }
            if failed || (got == 0 && errno != EINTR) { break }
            left -= got
        }
        return buffer
    }
}

/// What records the bytes a splice moved (`--pcap`'s two legs of a connection), told of
/// each pipeful as it goes by.
protocol SpliceRecording: AnyObject {
    /// A leg records payload bytes whole: each pipeful is then duplicated into the copy
    /// pipe for it.
    var wantsContents: Bool { get }
    /// `taken` bytes came from the source leg and the first `delivered` of them went out
    /// on the destination leg (the rest come back as `leftover`, recorded as NIO writes
    /// them). With `contents`, that pipe holds the `taken` bytes, and is empty on return.
    func moved(_ d: StreamDirection, taken: Int, delivered: Int, contents: Int32?)
    /// The copy could not be made: the bytes taken were read into user space instead and
    /// go out through NIO (recorded there on the destination leg); the source leg records
    /// them from `bytes`.
    func read(_ d: StreamDirection, _ bytes: ByteBuffer)
}
