import Foundation
import NBDProtocol
import NBDReport
import NBDTestSupport
@testable import NBDProxy
import Testing

/// The direct loop (RelayHandler+Direct.swift) relays small requests at queue depth
/// without a NIO wake-up per message: real clients keep many requests in flight, their
/// data comes back intact (fio's own verification), and the log and statistics are those
/// of the NIO path, checked against nbdkit's own log.
@Suite(.enabled(if: Peers.enabled("nbdkit", "qemu-img", "fio")), .serialized)
struct DirectLoopTests {
    /// qemu-img bench: `count` 4 KiB requests at depth 8 from qemu's own NBD driver.
    func bench(_ s: Scratch, _ uri: String, write: Bool, count: Int = 3000) throws {
        let r = try s.run("qemu-img", ["bench", "-f", "raw", "-c", String(count), "-d", "8", "-s", "4k", "-S", "4k"]
                          + (write ? ["-w", "--pattern=165"] : []) + [uri])
        #expect(r.status == 0, "\(r.output)")
    }

    @Test func qemuAtDepthEightIsRelayedDirectlyAndLoggedAsNBDKitSawIt() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "64M"])
        let proxy = try s.proxy(upstream: .unix(path: sock))
        try bench(s, proxy.uri(), write: true)
        try bench(s, proxy.uri(), write: false)
        #expect(proxy.server.bytesRelayedDirectly > 3000 * 4096, "\(proxy.server.bytesRelayedDirectly) bytes relayed directly")
        proxy.stop()
        let truth = try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)
        let requests = requestCounts(truth)
        #expect(requests["Write fua=0"] == 3000 && requests["Read"] == 3000, "\(requests)")
        #expect(requestCounts(proxy.log) == requests)
        #expect(replyCounts(proxy.log) == replyCounts(truth))
    }

    /// fio writes 16 MiB at depth 16 with a checksum in every block, then reads it all back
    /// and checks each block: fio's verification is the independent judge of the bytes.
    @Test func fioVerifiesEveryBlockWrittenAndReadAtDepth() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "16M"])
        let proxy = try s.proxy(upstream: .unix(path: sock))
        for rw in ["randwrite", "write"] {
            let r = try s.run("fio", ["--name=verify", "--ioengine=nbd", "--uri=\(proxy.uri())", "--rw=\(rw)", "--bs=4k",
                                      "--iodepth=16", "--size=16M", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
                                      "--output=\(s.path("fio-\(rw).txt"))"])
            #expect(r.status == 0, "fio \(rw): \(r.output) \((try? String(contentsOfFile: s.path("fio-\(rw).txt"), encoding: .utf8)) ?? "")")
        }
        #expect(proxy.server.bytesRelayedDirectly > 32 << 20, "\(proxy.server.bytesRelayedDirectly) bytes relayed directly")
        proxy.stop()
        let truth = try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)
        #expect(requestCounts(proxy.log) == requestCounts(truth))
    }

    /// The same workload with the loop and without it (`--no-direct`) gives the same
    /// requests, bytes and byte totals per direction.
    @Test func statisticsAreTheSameWithAndWithoutTheLoop() throws {
        var stats: [ConnectionStats] = []
        for direct in [true, false] {
            let s = try Scratch()
            let sock = try s.nbdkit(["memory", "64M"])
            let proxy = try s.proxy(upstream: .unix(path: sock), direct: direct)
            try bench(s, proxy.uri(), write: true, count: 2000)
            try bench(s, proxy.uri(), write: false, count: 2000)
            #expect((proxy.server.bytesRelayedDirectly > 0) == direct)
            proxy.stop()
            stats.append(proxy.server.stats.snapshot().0)
        }
        #expect(stats[0].known.map(\.requests) == stats[1].known.map(\.requests))
        #expect(stats[0].known.map(\.bytes) == stats[1].known.map(\.bytes))
        #expect(stats[0].bytesClientToServer == stats[1].bytesClientToServer)
        #expect(stats[0].bytesServerToClient == stats[1].bytesServerToClient)
        #expect(stats[0].known.reduce(0) { $0 + $1.requests } >= 4000)
    }
}
