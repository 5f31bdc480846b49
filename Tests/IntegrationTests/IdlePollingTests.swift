import Foundation
import NBDProtocol
import NBDTestSupport
@testable import NBDProxy
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The queue-depth-1 busy-polling (Sources/NBDProxy/IdlePolling.swift) and the sockets
/// nbdtap makes itself for it (Sockets.swift, Acceptor.swift).
@Suite(.serialized)
struct IdlePollingTests {
    /// A connected socket pair, closed by the caller.
    func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        return (fds[0], fds[1])
    }

    @Test func pollReturnsAtOnceWhenInputIsWaiting() throws {
        let (a, b) = try socketPair()
        let (c, d) = try socketPair()
        defer { for fd in [a, b, c, d] { close(fd) } }
        var byte: UInt8 = 7
        #expect(write(d, &byte, 1) == 1)
        // A window of 100 s: only input can end this poll.
        let poller = IdlePoller(windowMicroseconds: 100_000_000, cores: 2)
        #expect(poller.waitForInput(a, c) == true)
        #expect(poller.arrivals.load(ordering: .relaxed) == 1)
    }

    @Test func pollGivesUpAfterTheWindow() throws {
        let (a, b) = try socketPair()
        let (c, d) = try socketPair()
        defer { for fd in [a, b, c, d] { close(fd) } }
        let poller = IdlePoller(windowMicroseconds: 1_000, cores: 2)
        #expect(poller.waitForInput(a, c) == false)
        #expect(poller.timeouts.load(ordering: .relaxed) == 1)
    }

    @Test func oneCoreNeverPolls() {
        #expect(!IdlePoller(windowMicroseconds: 400, cores: 1).enabled)
        #expect(IdlePoller(windowMicroseconds: 400, cores: 1).waitForInput(0, 0) == nil)
        #expect(!IdlePoller(windowMicroseconds: 0, cores: 2).enabled)
        #expect(IdlePoller(windowMicroseconds: 400, cores: 2).enabled)
    }

    /// More connections open than spare cores: nobody polls, even with input waiting.
    @Test func moreConnectionsThanSpareCoresNeverPoll() throws {
        let (a, b) = try socketPair()
        let (c, d) = try socketPair()
        defer { for fd in [a, b, c, d] { close(fd) } }
        var byte: UInt8 = 7
        #expect(write(d, &byte, 1) == 1)
        let poller = IdlePoller(windowMicroseconds: 400, cores: 2)
        poller.connections.add(2, ordering: .relaxed)
        #expect(poller.waitForInput(a, c) == nil)
        #expect(poller.skipped.load(ordering: .relaxed) == 1)
        poller.connections.subtract(1, ordering: .relaxed)
        #expect(poller.waitForInput(a, c) == true)
    }

    @Test func slowPeersTurnPollingOffAndQuickOnesBackOn() {
        var state = IdlePollState()
        #expect(state.quick)
        // The loop slept 1 s ago and input arrives now: slower than a 400 us window.
        state.sleptAt = monotonicNanoseconds() - 1_000_000_000
        state.input(window: 400_000)
        #expect(!state.quick)
        #expect(state.sleptAt == 0)
        // Input right after the loop went to sleep: polling pays again.
        state.sleptAt = monotonicNanoseconds()
        state.input(window: 400_000_000)
        #expect(state.quick)
        // A read with no sleep before it changes nothing.
        state.input(window: 1)
        #expect(state.quick)
    }

    /// Queue depth 1 with polling on and with a 1 us window (nearly every poll times out,
    /// so the quick/slow switching is exercised): the relay stays byte-exact and the log
    /// matches nbdkit's, and the poller did poll.
    @Test(.enabled(if: Peers.enabled("nbdkit", "nbdsh")), arguments: [400, 1])
    func queueDepthOneSessionWhilePolling(window: Int) throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "4M"])
        let proxy = try s.proxy(upstream: .unix(path: sock), idlePoll: window)
        let r = try s.nbdsh(proxy.uri(), """
            h.connect_uri(os.environ["uri"])
            import random
            rnd = random.Random(5)
            for i in range(300):
                off = rnd.randrange(0, 1024) * 4096
                data = rnd.randbytes(4096)
                h.pwrite(data, off)
                assert h.pread(4096, off) == data, i
            h.flush()
            print("ok")
            h.shutdown()
            """)
        #expect(r.status == 0 && r.output.contains("ok"), "\(r.output)")
        proxy.stop()
        let truth = try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)
        #expect(requestCounts(proxy.log) == requestCounts(truth))
        #expect(replyCounts(proxy.log) == replyCounts(truth))
        #expect(requestCounts(proxy.log).filter { $0.key.hasPrefix("Write") }.values.reduce(0, +) == 300)
        let p = proxy.server.poller
        let polls = p.arrivals.load(ordering: .relaxed) + p.timeouts.load(ordering: .relaxed) + p.skipped.load(ordering: .relaxed)
        #expect(polls > 0)
    }

    @Test(.enabled(if: Peers.enabled("nbdkit", "nbdsh"))) func idlePollZeroNeverPolls() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "1M"])
        let proxy = try s.proxy(upstream: .unix(path: sock), idlePoll: 0)
        let r = try s.nbdsh(proxy.uri(), "h.connect_uri(os.environ['uri'])\nfor i in range(20): h.pread(512, 0)\nh.shutdown()")
        #expect(r.status == 0, "\(r.output)")
        proxy.stop()
        #expect(requestCounts(proxy.log)["Read"] == 20)
        let p = proxy.server.poller
        #expect(p.arrivals.load(ordering: .relaxed) + p.timeouts.load(ordering: .relaxed) + p.skipped.load(ordering: .relaxed) == 0)
    }

    /// Both legs over IPv6 loopback (the listening and connecting sockets nbdtap makes):
    /// nbdkit on [::1], the proxy on [::1] port 0, every command, counts equal nbdkit's log.
    @Test(.enabled(if: Peers.enabled("nbdkit", "nbdsh"))) func ipv6LoopbackBothLegs() throws {
        try Peers.require("nbdkit", "nbdsh")
        let s = try Scratch()
        let port = freePort()
        let pidFile = s.path("nbdkit.pid")
        try s.start("nbdkit", ["-f", "--exit-with-parent", "-i", "::1", "-p", String(port), "-P", pidFile,
                               "--filter=log", "memory", "8M", "logfile=\(s.path("nbdkit.log"))"])
        try s.waitFor(pidFile)
        let proxy = try s.proxy(upstream: .tcp(host: "::1", port: port), listen: .tcp(host: "::1", port: 0))
        guard case .tcp(_, let bound) = proxy.endpoint else { Issue.record("not TCP"); return }
        #expect(bound != 0)
        #expect(proxy.uri().hasPrefix("nbd://[::1]:"))
        let r = try s.nbdsh(proxy.uri(), NBDKitProxyTests.everyCommand)
        #expect(r.status == 0, "\(r.output)")
        proxy.stop()
        let truth = try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)
        #expect(requestCounts(proxy.log) == requestCounts(truth))
        #expect(replyCounts(proxy.log) == replyCounts(truth))
        #expect(requestCounts(proxy.log).values.reduce(0, +) > 10)
    }

    /// An upstream that refuses (nothing listens on the port): the client is closed and the
    /// log names the failed call with its errno text.
    @Test(.enabled(if: Peers.enabled("nbdinfo"))) func upstreamRefusedNamesTheCall() throws {
        let s = try Scratch()
        let port = freePort()
        let proxy = try s.proxy(upstream: .tcp(host: "127.0.0.1", port: port))
        let r = try s.run("nbdinfo", ["--size", proxy.uri()])
        #expect(r.status != 0)
        proxy.stop()
        let line = proxy.log.split(separator: "\n").first { $0.contains(" Upstream error=") }
        #expect(line?.contains("connect 127.0.0.1:\(port): Connection refused (errno \(ECONNREFUSED))") == true, "\(proxy.log)")
    }
}
