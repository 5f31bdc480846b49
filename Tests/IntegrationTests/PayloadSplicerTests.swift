import NIOCore
@testable import NBDProxy
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The splice(2) mover on its own, with socket pairs: what it takes from the source either
/// reaches the destination or comes back as `leftover`, in order, and it never takes more
/// than it was allowed.
@Suite struct PayloadSplicerTests {
    func nonBlockingPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        return (fds[0], fds[1])
    }

    func pattern(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) } }

    func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n <= 0 { break }
                done += n
            }
            return done
        }
    }

    func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    @Test func takesAtMostTheLimitAndDeliversInOrder() throws {
        let (srcIn, srcOut) = try nonBlockingPair()
        let (dstIn, dstOut) = try nonBlockingPair()
        defer { for fd in [srcIn, srcOut, dstIn, dstOut] { close(fd) } }
        let data = pattern(100_000)
        #expect(writeAll(srcIn, data) == data.count)
        let splicer = try #require(PayloadSplicer())
        let moved = splicer.move(from: srcOut, to: dstIn, limit: 60_000, direction: .clientToServer, recording: nil, allocator: ByteBufferAllocator())
        #expect(moved.bytes == 60_000)
        #expect(moved.leftover == nil && !moved.lost && !moved.unsupported)
        #expect(readAll(dstOut) == Array(data[0..<60_000]))
        // The rest is still in the source for whoever reads next.
        #expect(readAll(srcOut) == Array(data[60_000...]))
    }

    /// A destination that takes only part (its buffer full, nobody reading): the rest of
    /// what was taken comes back, so nothing is lost and the order holds.
    @Test func aFullDestinationGivesTheRestBack() throws {
        let (srcIn, srcOut) = try nonBlockingPair()
        let (dstIn, dstOut) = try nonBlockingPair()
        defer { for fd in [srcIn, srcOut, dstIn, dstOut] { close(fd) } }
        var small: Int32 = 4096
        setsockopt(dstIn, SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(dstOut, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        let data = pattern(150_000)
        #expect(writeAll(srcIn, data) == data.count)
        let splicer = try #require(PayloadSplicer())
        let moved = splicer.move(from: srcOut, to: dstIn, limit: UInt64(data.count), direction: .clientToServer, recording: nil, allocator: ByteBufferAllocator())
        let leftover = try #require(moved.leftover)
        #expect(!moved.lost)
        #expect(leftover.readableBytes > 0)
        let delivered = readAll(dstOut)
        #expect(delivered.count + leftover.readableBytes == Int(moved.bytes))
        #expect(delivered + Array(leftover.readableBytesView) == Array(data[0..<Int(moved.bytes)]))
    }

    /// An empty source: nothing moved, and the caller is told to wait for NIO's read.
    @Test func anEmptySourceIsDry() throws {
        let (srcIn, srcOut) = try nonBlockingPair()
        let (dstIn, dstOut) = try nonBlockingPair()
        defer { for fd in [srcIn, srcOut, dstIn, dstOut] { close(fd) } }
        let splicer = try #require(PayloadSplicer())
        let moved = splicer.move(from: srcOut, to: dstIn, limit: 1000, direction: .clientToServer, recording: nil, allocator: ByteBufferAllocator())
        #expect(moved.bytes == 0 && moved.sourceDry && moved.leftover == nil)
    }
}
