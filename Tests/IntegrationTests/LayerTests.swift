import Foundation
import NBDTestSupport
import Testing

/// The fault and shaping layers with real clients and servers: what the client sees (its
/// exit status and error text, the data it reads back), what the upstream's own record
/// shows (nbdkit's log filter, qemu-nbd's trace), and nbdtap's statistics.
@Suite(.enabled(if: Peers.enabledWithQemu10("nbdkit", "nbdsh", "nbdcopy", "qemu-img", "qemu-io", "qemu-nbd")))
struct LayerTests {
    /// `nbdtap proxy --upstream SOCK ARGS --run CMD` with the log in px.log.
    func proxy(_ s: Scratch, _ sock: String, _ args: [String], _ cmd: String, timeout: Double = 120) throws -> Scratch.Result {
        try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--quiet", "--log", s.path("px.log")]
                      + args + ["--run", cmd], timeout: timeout)
    }

    /// A python3-libnbd script as a --run command (`$uri` comes from nbdtap).
    func script(_ s: Scratch, _ name: String, _ body: String) throws -> String {
        try body.write(toFile: s.path(name), atomically: true, encoding: .utf8)
        return "nbdsh -c 'import os' -c \"exec(open('\(s.path(name))').read())\""
    }

    func qemuNBD10(_ s: Scratch, size: String = "64M") throws -> String {
        try Peers.requireQemu10()
        try s.run("truncate", ["-s", size, s.path("disk.raw")])
        let sock = s.path("q.sock")
        try s.start(Peers.qemu10("qemu-nbd"), ["--persistent", "-f", "raw", "-k", sock, "--trace", "nbd_receive_request",
                                             s.path("disk.raw")], name: "qemu-nbd")
        try s.waitFor(sock)
        return sock
    }

    // MARK: --error

    @Test(arguments: ["qemu-img", Peers.qemu10("qemu-img")])
    func convertThroughAnInjectedENOSPCFailsNamingIt(_ qemuImg: String) throws {
        try Peers.requireQemu10()
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "16M"])
        try s.run("/bin/sh", ["-c", "head -c 4M /dev/urandom > \(s.path("src.raw"))"])
        let r = try proxy(s, sock, ["--error", "write=ENOSPC"], "\(qemuImg) convert -n -f raw -O raw \(s.path("src.raw")) \"$uri\"")
        #expect(r.status != 0, "\(r.output)")
        #expect(r.output.contains("No space left on device"), "\(r.output)")
        // nbdkit never saw a write; nbdtap says which layer answered.
        #expect(requestCounts(s.contents("nbdkit.log"), actions: ["Write"]).isEmpty)
        #expect(s.contents("px.log").contains(#"Inject id=1 answered=NBD_CMD_WRITE error=ENOSPC reason="injected (--error)""#))
        #expect(s.contents("px.log").contains("...Write id=1 return=-1 error=ENOSPC"))
    }

    /// nbdkit's `error-file`: the rule holds only while the file exists; `every=` counts.
    @Test func errorFileAndScheduleWhileTheProxyRuns() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "1M"])
        let flag = s.path("fail-now")
        let cmd = try script(s, "c.py", """
            h.connect_uri(os.environ["uri"])
            def w():
                try:
                    h.pwrite(b"x" * 512, 0); return "ok"
                except nbd.Error as e:
                    return e.errno
            out = [w()]
            open("\(flag)", "w").close()
            out += [w(), w()]
            os.unlink("\(flag)")
            out += [w()]
            out += [h.pread(512, 0) and "read" for _ in range(4)]
            print("results", out)
            """)
        let r = try proxy(s, sock, ["--error", "write=EIO,file=\(flag)", "--error", "read=EPERM,every=2"], cmd)
        // The reads: 2nd and 4th fail, and an nbd.Error ends the script there.
        #expect(r.output.contains("EPERM"), "\(r.output)")
        let log = s.contents("px.log")
        #expect(log.components(separatedBy: "answered=NBD_CMD_WRITE error=EIO").count - 1 == 2, "\(log)")
        #expect(requestCounts(s.contents("nbdkit.log"), actions: ["Write"]).values.reduce(0, +) == 2)
        #expect(log.contains("...Read id=6 return=-1 error=EPERM"), "\(log)")
    }

    // MARK: --delay

    /// Every delayed request's latency in nbdtap's statistics is at least the delay, and
    /// requests in flight wait at the same time (16 reads at depth 4 reach the upstream in
    /// four waves, which nbdkit's log timestamps show).
    @Test func delayAddsToTheLatencyInTheStatistics() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "16M"])
        let r = try proxy(s, sock, ["--delay", "read=40ms,write=10ms", "--stats", s.path("st.json"), "--stats-format", "json"],
                          "qemu-img bench -f raw -c 16 -d 4 -s 64k \"$uri\"")
        #expect(r.status == 0, "\(r.output)")
        let stats = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.path("st.json")))) as! [String: Any]
        let read = (stats["commands"] as! [String: Any])["READ"] as! [String: Any]
        #expect(read["requests"] as? Int == 16)
        let latency = read["latency_us"] as! [String: Double]
        #expect(latency["min"]! >= 40_000, "\(latency)")
        // Upstream arrival times from nbdkit's own log: waves of 4, each ≥ 40 ms apart.
        let times = s.contents("nbdkit.log").split(separator: "\n").filter { $0.contains(" Read id=") && $0.hasSuffix("...") }
            .compactMap { line -> Double? in
                let t = line.split(separator: " ")[1].split(separator: ":")
                return t.count == 3 ? Double(t[2]).map { Double(t[0])! * 3600 + Double(t[1])! * 60 + $0 } : nil
            }
        #expect(times.count == 16)
        if times.count == 16 { #expect(times[15] - times[0] >= 0.12, "\(times)") }
    }

    // MARK: --rate

    /// nbdcopy through `--rate 16M` cannot go faster than the rate (less the 0.1 s burst);
    /// the measured ratio is in the output (and in bench/run's layers section).
    @Test(arguments: ["16M", "read=16M", "connection=16M"])
    func rateHoldsNbdcopyToTheRate(_ spec: String) throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "32M"])
        try s.run("/bin/sh", ["-c", "head -c 32M /dev/urandom > \(s.path("src.raw")) && nbdcopy \(s.path("src.raw")) 'nbd+unix:///?socket=\(sock)'"])
        let start = Date()
        let r = try proxy(s, sock, ["--rate", spec], "nbdcopy \"$uri\" \(s.path("copy.raw"))")
        let elapsed = Date().timeIntervalSince(start)
        #expect(r.status == 0, "\(r.output)")
        // 32 MiB at 16 MiB/s: 2 s, less what the bucket may save up (0.1 s).
        #expect(elapsed >= 1.9, "\(spec): \(elapsed) s")
        print("rate \(spec): 32 MiB in \(String(format: "%.2f", elapsed)) s, ratio \(String(format: "%.3f", 2.0 / elapsed)) of the rate")
        #expect(try s.run("cmp", [s.path("src.raw"), s.path("copy.raw")]).status == 0)
    }

    // MARK: --max-payload

    /// A 32 MiB WRITE and READ from a client that ignores the maximum (libnbd 1.14 does not
    /// enforce it): nbdkit's log shows 128 pieces of 256 KiB each way, the client one
    /// reply each, the data identical; with and without structured replies.
    @Test(arguments: [true, false])
    func maxPayloadSplitsLargeRequests(_ structured: Bool) throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "64M"])
        let cmd = try script(s, "c.py", """
            h.set_request_structured_replies(\(structured ? "True" : "False"))
            h.connect_uri(os.environ["uri"])
            print("maximum", h.get_block_size(nbd.SIZE_MAXIMUM), "structured", h.get_structured_replies_negotiated())
            data = os.urandom(32 << 20)
            h.pwrite(data, 0)
            print("same", h.pread(32 << 20, 0) == data)
            h.pwrite(b"y" * 4096, 1 << 20)
            """)
        let r = try proxy(s, sock, ["--max-payload", "256k"], cmd)
        #expect(r.output.contains("maximum 262144 structured \(structured ? "True" : "False")"), "\(r.output)")
        #expect(r.output.contains("same True"), "\(r.output)")
        let up = requestCounts(s.contents("nbdkit.log"), actions: ["Read", "Write"])
        #expect(up == ["Write fua=0": 129, "Read": 128], "\(up)")
        let pieces = s.contents("nbdkit.log").split(separator: "\n").filter { $0.contains(" Write id=") && $0.hasSuffix("...") }
        #expect(pieces.prefix(128).allSatisfy { $0.contains("count=0x40000 ") })
        let px = requestCounts(s.contents("px.log"), actions: ["Read", "Write"])
        #expect(px == ["Write fua=0": 2, "Read": 1], "\(px)")
        #expect(s.contents("px.log").contains("Split id=1 pieces=128 max_payload=262144"))
    }

    /// Extended headers (qemu-nbd 10): the client is shown the maximum, a 1 MiB WRITE and
    /// READ past it go to qemu-nbd as four pieces each (its trace), the READ's chunks come
    /// back under the client's cookie and the data is the same; and qemu-io 10, which
    /// honours the maximum, never sends more than 256 KiB.
    @Test func maxPayloadUnderExtendedHeaders() throws {
        let s = try Scratch()
        let sock = try qemuNBD10(s)
        let client = repoRoot.appendingPathComponent("Tests/IntegrationTests/Tools/ext_split_client.py").path
        let r = try proxy(s, sock, ["--max-payload", "256k"], "/usr/bin/python3 \(client) $unixsocket")
        #expect(r.output.contains("block_size 1 4096 262144"), "\(r.output)")
        #expect(r.output.contains("write ok 0") && r.output.contains("read same chunks") && r.output.contains("done"), "\(r.output)")
        let q = try proxy(s, sock, ["--max-payload", "256k"],
                          "\(Peers.qemu10("qemu-io")) -f raw -c 'write -P 0x5a 0 4M' -c 'read -P 0x5a 0 4M' \"$uri\"")
        #expect(q.status == 0 && !q.output.contains("Pattern verification failed"), "\(q.output)")
        let trace = qemuTrace(s.output(of: "qemu-nbd")).requests
        let data = trace.filter { $0.type == 0 || $0.type == 1 }
        #expect(data.allSatisfy { $0.length <= 256 << 10 }, "\(data.filter { $0.length > 256 << 10 })")
        // The raw client's WRITE and READ: 4 pieces each at 0, 256k, 512k, 768k.
        for type in [0, 1] {
            let first = data.filter { $0.type == type && $0.offset < 1 << 20 }.prefix(4).map(\.offset)
            #expect(first == [0, 256 << 10, 512 << 10, 768 << 10], "type \(type): \(first)")
        }
    }

    /// An emulated zero in 64 KiB pieces goes upstream a window at a time (16 WRITEs in
    /// flight at most): all 256 pieces when they succeed, the data reads back as zeroes;
    /// when the upstream fails every WRITE (nbdkit's error filter), the first window only,
    /// and the client gets the error.
    @Test func emulatedZeroesGoUpstreamAWindowAtATime() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "32M"])
        let cmd = try script(s, "c.py", """
            h.connect_uri(os.environ["uri"])
            h.pwrite(b"\\x5a" * (16 << 20), 0)
            try:
                h.zero(16 << 20, 0); print("zero ok")
            except nbd.Error as e:
                print("zero", e.errno)
            print("zeroes", h.pread(16 << 20, 0) == bytes(16 << 20))
            """)
        let r = try proxy(s, sock, ["--zeromode", "emulate", "--max-payload", "64k"], cmd)
        #expect(r.output.contains("zero ok") && r.output.contains("zeroes True"), "\(r.output)")
        let writes = s.contents("nbdkit.log").split(separator: "\n").filter { $0.contains(" Write id=") && $0.hasSuffix("...") }
        #expect(writes.count == 256 + 256, "\(writes.count)")  // the client's 16 MiB in 64 KiB pieces, then the zero's
        let failing = try s.nbdkit(["--filter=error", "memory", "32M", "error-pwrite=EIO", "error-pwrite-rate=1"], name: "failing")
        let f = try proxy(s, failing, ["--zeromode", "emulate", "--max-payload", "64k"], try script(s, "z.py", """
            h.connect_uri(os.environ["uri"])
            try:
                h.zero(16 << 20, 0); print("zero ok")
            except nbd.Error as e:
                print("zero", e.errno)
            """))
        #expect(f.output.contains("zero EIO"), "\(f.output)")
        let tried = s.contents("failing.log").split(separator: "\n").filter { $0.contains(" Write id=") && $0.hasSuffix("...") }
        #expect(tried.count == 16, "\(tried.count)")
    }

    // MARK: --no-extents

    @Test(arguments: ["qemu-img", Peers.qemu10("qemu-img")])
    func noExtentsShowsEverythingAsData(_ qemuImg: String) throws {
        let s = try Scratch()
        let sock = try qemuNBD10(s)
        let plain = try proxy(s, sock, [], "\(qemuImg) map -f raw --output=json \"$uri\"")
        #expect(plain.output.contains(#""data": false"#), "\(plain.output)")
        let before = qemuTrace(s.output(of: "qemu-nbd")).requests.filter { $0.type == 7 }.count
        let r = try proxy(s, sock, ["--no-extents"], "\(qemuImg) map -f raw --output=json \"$uri\"")
        #expect(r.output.contains(#""start": 0, "length": 67108864, "depth": 0, "present": true, "zero": false, "data": true"#), "\(r.output)")
        // qemu-nbd was not asked: nbdtap answered.
        #expect(qemuTrace(s.output(of: "qemu-nbd")).requests.filter { $0.type == 7 }.count == before)
        #expect(before > 0)
    }

    @Test func noExtentsUnderExtendedHeaders() throws {
        let s = try Scratch()
        let sock = try qemuNBD10(s)
        let client = repoRoot.appendingPathComponent("Tests/IntegrationTests/Tools/ext_split_client.py").path
        let r = try proxy(s, sock, ["--no-extents"], "/usr/bin/python3 \(client) $unixsocket")
        #expect(r.output.contains("block_status True [(4194304, 0)]"), "\(r.output)")
        #expect(!qemuTrace(s.output(of: "qemu-nbd")).requests.contains { $0.type == 7 })
    }

    // MARK: --disconnect-after

    /// qemu-io with `reconnect-delay` rides out connections cut after 3 requests, and
    /// after 1.5 MiB of the client's stream (inside the second 1 MiB WRITE's payload): its
    /// patterns read back (through nbdtap and straight from qemu-nbd), the cuts are in
    /// nbdtap's log.
    @Test(arguments: ["requests=3", "client-bytes=1536k", "server-bytes=1536k"])
    func reconnectDelaySurvivesDisconnects(_ spec: String) throws {
        let s = try Scratch()
        let sock = try qemuNBD10(s, size: "16M")
        let writes = (0..<8).flatMap { ["-c", "'write -P 0x\($0 + 16) \($0)M 1M'"] }.joined(separator: " ")
        let reads = (0..<8).flatMap { ["-c", "'read -P 0x\($0 + 16) \($0)M 1M'"] }.joined(separator: " ")
        let r = try proxy(s, sock, ["--disconnect-after", spec],
                          "\(Peers.qemu10("qemu-io")) --image-opts driver=nbd,server.type=unix,server.path=$unixsocket,reconnect-delay=20 \(writes) \(reads)",
                          timeout: 180)
        #expect(r.status == 0 && !r.output.contains("Pattern verification failed") && !r.output.contains("failed:"), "\(r.output)")
        let cuts = s.contents("px.log").components(separatedBy: "(--disconnect-after)").count - 1
        #expect(cuts >= 2, "\(s.contents("px.log"))")
        let direct = try s.run(Peers.qemu10("qemu-io"), ["-f", "raw"] + (0..<8).flatMap { ["-c", "read -P 0x\($0 + 16) \($0)M 1M"] }
                                   + ["nbd+unix:///?socket=\(sock)"])
        #expect(direct.status == 0 && !direct.output.contains("Pattern verification failed"), "\(direct.output)")
    }

    // MARK: order

    /// The layers stack in the order typed: an error rule below the zero emulation sees its
    /// WRITEs and fails the zero; above it, it sees a WRITE_ZEROES and lets it through.
    @Test func layersStackInTheOrderTyped() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "1M"])
        let cmd = try script(s, "c.py", """
            h.connect_uri(os.environ["uri"])
            try:
                h.zero(65536, 0); print("zero ok")
            except nbd.Error as e:
                print("zero", e.errno)
            """)
        let below = try proxy(s, sock, ["--zeromode", "emulate", "--error", "write=EIO"], cmd)
        #expect(below.output.contains("zero EIO"), "\(below.output)")
        #expect(requestCounts(s.contents("nbdkit.log"), actions: ["Write", "Zero"]).isEmpty)
        let above = try proxy(s, sock, ["--error", "write=EIO", "--zeromode", "emulate"], cmd)
        #expect(above.output.contains("zero ok"), "\(above.output)")
        #expect(requestCounts(s.contents("nbdkit.log"), actions: ["Write", "Zero"]) == ["Write fua=0": 1])
    }

    @Test func badLayerValuesAreUsageErrors() throws {
        let s = try Scratch()
        for (args, quoted) in [(["--delay", "write=soon"], "--delay 'write=soon'"), (["--max-payload", "1G"], "--max-payload '1G'"),
                               (["--error", "write=EBADF"], "--error 'write=EBADF'"), (["--rate", "fast"], "--rate 'fast'")] {
            let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=/nonexistent"] + args + ["--run", "true"])
            #expect(r.status == 64, "\(args): \(r.status) \(r.output)")
            #expect(r.output.contains(quoted), "\(r.output)")
        }
    }
}
