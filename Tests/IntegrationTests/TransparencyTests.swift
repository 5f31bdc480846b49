import Foundation
import NBDProtocol
import Testing

/// The proxy's promise that it changes no byte: recording relays (Tools/record_relay.py,
/// a byte copier, not an NBD peer) sit between the client and the proxy and between the
/// proxy and nbdkit. What the client sent must be exactly what nbdkit received, and what
/// nbdkit sent exactly what the client received, connection by connection.
@Suite(.enabled(if: Peers.enabled("nbdkit", "nbdsh", "nbdcopy", "python3")), .serialized)
struct TransparencyTests {
    @Test func everyCommandIsRelayedByteForByte() throws {
        let s = try Scratch()
        let chain = try RecordedChain(s, nbdkitArgs: ["memory", "8M"])
        let r = try s.nbdsh(chain.uri, NBDKitProxyTests.everyCommand)
        #expect(r.status == 0, "\(r.output)")
        let (client, server) = try chain.finish()
        #expect(client.count == 1)
        #expect(client[0].c2s.count > 32768 && client[0].s2c.count > 32768)
        try expectSameBytes(client, server)
        #expect(!chain.proxy.log.contains("Violation"))
    }

    /// Both paths: large payloads spliced in the kernel (the default) and every byte
    /// through user space (`--no-splice`).
    @Test(arguments: [true, false]) func bulkCopyIsRelayedByteForByte(splice: Bool) throws {
        let s = try Scratch()
        let chain = try RecordedChain(s, nbdkitArgs: ["memory", "64M"], splice: splice)
        let src = s.path("src.img")
        // 64 MiB of random data (no holes for nbdcopy to skip), 2 MiB of zeroes in the
        // middle so the copy also sends WRITE_ZEROES.
        let py = "import random\nr=random.Random(3)\nd=bytearray(r.randbytes(64<<20))\nd[32<<20:34<<20]=bytes(2<<20)\nopen('\(src)','wb').write(d)\n"
        try s.run("python3", ["-c", py])
        let copy = try s.run("nbdcopy", ["--flush", src, chain.uri])
        #expect(copy.status == 0, "\(copy.output)")
        let back = try s.run("nbdcopy", [chain.uri, s.path("back.img")])
        #expect(back.status == 0, "\(back.output)")
        #expect(FileManager.default.contentsEqual(atPath: src, andPath: s.path("back.img")))
        let (client, server) = try chain.finish()
        #expect(client.count >= 2)  // two nbdcopy runs, each with its own connections
        let sent = client.reduce(0) { $0 + $1.c2s.count }
        let received = client.reduce(0) { $0 + $1.s2c.count }
        #expect(sent > 60 << 20 && received > 60 << 20, "\(sent) bytes sent, \(received) received")
        try expectSameBytes(client, server)
        // nbdcopy's 256 KiB requests: most of both copies' data went the kernel's way.
        let spliced = chain.proxy.server.bytesSpliced
        if splice {
            #expect(spliced > UInt64(sent + received) / 2, "\(spliced) of \(sent + received) bytes spliced")
        } else {
            #expect(spliced == 0)
        }
    }

    /// Pairs every connection seen by the client-side relay with one seen by the
    /// server-side relay carrying identical bytes both ways (connections may be accepted
    /// in a different order on each side, so they are matched by content).
    func expectSameBytes(_ client: [Recorded], _ server: [Recorded], sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(client.count == server.count, sourceLocation: sourceLocation)
        var unmatched = server
        for c in client {
            if let i = unmatched.firstIndex(where: { $0.c2s == c.c2s && $0.s2c == c.s2c }) {
                unmatched.remove(at: i)
            } else {
                let near = server.first { $0.c2s.count == c.c2s.count } ?? server.first
                let toServer = firstDifference(c.c2s, near?.c2s ?? Data())
                let toClient = firstDifference(c.s2c, near?.s2c ?? Data())
                let message = "client connection \(c.name) (\(c.c2s.count) bytes sent, \(c.s2c.count) received) has no byte-identical "
                    + "server connection; closest \(near?.name ?? "-") (\(near?.c2s.count ?? 0) received, \(near?.s2c.count ?? 0) sent) "
                    + "first differs at byte \(toServer) towards the server, \(toClient) towards the client"
                Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
            }
        }
    }

    func firstDifference(_ a: Data, _ b: Data) -> Int {
        var i = 0
        for (x, y) in zip(a, b) {
            if x != y { break }
            i += 1
        }
        return i
    }
}

/// One connection as a recording relay saw it.
struct Recorded {
    var name: String
    var c2s: Data
    var s2c: Data
}

/// client → relay "c" → in-process proxy → relay "u" → nbdkit, all on Unix sockets.
struct RecordedChain {
    let scratch: Scratch
    let proxy: RunningProxy
    let uri: String

    init(_ s: Scratch, nbdkitArgs: [String], splice: Bool = true) throws {
        scratch = s
        let nbdkit = try s.nbdkit(nbdkitArgs, logFilter: false)
        let upRelay = s.path("relay-u.sock")
        try s.start("python3", [toolPath("record_relay.py"), upRelay, nbdkit, s.dir, "u"], name: "relay-u")
        try s.waitFor(upRelay)
        proxy = try s.proxy(upstream: .unix(path: upRelay), splice: splice)
        guard case .unix(let proxySock) = proxy.endpoint else { throw HarnessError.timeout("proxy on a Unix socket") }
        let clientRelay = s.path("relay-c.sock")
        try s.start("python3", [toolPath("record_relay.py"), clientRelay, proxySock, s.dir, "c"], name: "relay-c")
        try s.waitFor(clientRelay)
        uri = "nbd+unix:///?socket=\(clientRelay)"
    }

    /// Once the clients are done: waits for both relays to finish every connection the
    /// client side accepted (each went through a handshake, so each was accepted before
    /// its client exited), then reads them.
    func finish() throws -> ([Recorded], [Recorded]) {
        let connections = try FileManager.default.contentsOfDirectory(atPath: scratch.dir)
            .filter { $0.hasPrefix("c-") && $0.hasSuffix(".c2s") }.count
        guard connections > 0 else { throw HarnessError.timeout("a connection through the client-side relay") }
        for prefix in ["c", "u"] {
            try waitUntil("relay \(prefix) to finish \(connections) connections") {
                (1...connections).allSatisfy { FileManager.default.fileExists(atPath: scratch.path("\(prefix)-\($0).done")) }
            }
        }
        proxy.stop()
        func load(_ prefix: String) throws -> [Recorded] {
            try (1...connections).map { n in
                let base = scratch.path("\(prefix)-\(n)")
                return Recorded(name: "\(prefix)-\(n)", c2s: try Data(contentsOf: URL(fileURLWithPath: base + ".c2s")),
                                s2c: try Data(contentsOf: URL(fileURLWithPath: base + ".s2c")))
            }
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.path("u-\(connections + 1).c2s")))
        return (try load("c"), try load("u"))
    }
}
