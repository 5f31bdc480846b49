import Foundation
import NBDProtocol
import NBDReport
import NBDTestSupport
@testable import NBDProxy
import Testing

/// Large payloads spliced socket to socket (PayloadSplicer.swift, RelayHandler+Kernel.swift):
/// the bytes arrive whole and in order, the log counts what nbdkit's own log counts, and the
/// path falls back to NIO's queue when a receiver is slow.
@Suite(.enabled(if: Peers.enabled("nbdkit", "nbdcopy", "python3")), .serialized)
struct KernelPathTests {
    /// 24 MiB of seeded random data, and its SHA-256 from Python's hashlib.
    func sourceImage(_ s: Scratch) throws -> (path: String, sha: String) {
        let src = s.path("src.img")
        let py = "import random,hashlib\nd=random.Random(5).randbytes(24<<20)\nopen('\(src)','wb').write(d)\nprint(hashlib.sha256(d).hexdigest())\n"
        let r = try s.run("python3", ["-c", py])
        return (src, r.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A slow server and a slow reader. nbdkit with two threads, each WRITE held 200 ms:
    /// nbdcopy's 2 MiB writes pile up in the proxy's socket to nbdkit, so splices into it
    /// come up short or wait for NIO's queue (when depends on timing; PayloadSplicerTests
    /// shows the short splice itself), without a byte lost or reordered. Then nbdcopy reads
    /// back into a pipe read only after 2 s.
    ///
    /// Without the kernel path the direct loop (RelayHandler+Direct.swift) relays the
    /// payloads, and the full receivers make its writes come up short: the rest goes
    /// through NIO's queue, in order.
    @Test(arguments: [true, false]) func aSlowServerAndASlowReaderGetEveryByte(splice: Bool) throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["--threads", "2", "--filter=delay", "memory", "24M", "delay-write=200ms"])
        let proxy = try s.proxy(upstream: .unix(path: sock), splice: splice)
        let (src, sha) = try sourceImage(s)
        let write = try s.run("nbdcopy", ["--request-size=2097152", "--connections=1", src, proxy.uri()])
        #expect(write.status == 0, "\(write.output)")
        let slow = try s.run("sh", ["-c", "nbdcopy --request-size=2097152 --connections=1 '\(proxy.uri())' - | (sleep 2; sha256sum)"])
        #expect(slow.status == 0, "\(slow.output)")
        #expect(slow.output.hasPrefix(sha), "read back \(slow.output), wrote \(sha)")
        if splice {
            #expect(proxy.server.bytesSpliced > 24 << 20, "\(proxy.server.bytesSpliced) bytes spliced")
        } else {
            #expect(proxy.server.bytesSpliced == 0 && proxy.server.bytesRelayedDirectly > 24 << 20,
                    "\(proxy.server.bytesRelayedDirectly) bytes relayed directly")
        }
        proxy.stop()
        let truth = try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)
        #expect(requestCounts(proxy.log) == requestCounts(truth))
        #expect(replyCounts(proxy.log) == replyCounts(truth))
    }

    /// The statistics do not depend on the path: the same copies with and without the
    /// kernel path give the same requests, bytes and byte totals per direction.
    @Test func statisticsAreTheSameOnBothPaths() throws {
        var results: [(ConnectionStats, [String: Int])] = []
        for splice in [true, false] {
            let s = try Scratch()
            let sock = try s.nbdkit(["memory", "24M"])
            let proxy = try s.proxy(upstream: .unix(path: sock), splice: splice)
            let (src, _) = try sourceImage(s)
            #expect(try s.run("nbdcopy", ["--connections=1", src, proxy.uri()]).status == 0)
            #expect(try s.run("nbdcopy", ["--connections=1", proxy.uri(), s.path("back.img")]).status == 0)
            #expect(FileManager.default.contentsEqual(atPath: src, andPath: s.path("back.img")))
            #expect((proxy.server.bytesSpliced > 0) == splice)
            proxy.stop()
            let truth = try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)
            #expect(requestCounts(proxy.log) == requestCounts(truth))
            results.append((proxy.server.stats.snapshot().0, requestCounts(truth)))
        }
        let (kernel, user) = (results[0].0, results[1].0)
        #expect(kernel.known.map(\.requests) == user.known.map(\.requests))
        #expect(kernel.known.map(\.bytes) == user.known.map(\.bytes))
        #expect(kernel.bytesClientToServer == user.bytesClientToServer)
        #expect(kernel.bytesServerToClient == user.bytesServerToClient)
        #expect(kernel.known.reduce(0) { $0 + $1.requests } > 100 && results[0].1 == results[1].1)
    }
}
