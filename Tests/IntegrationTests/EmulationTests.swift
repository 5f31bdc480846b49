import Foundation
import NBDTestSupport
import Testing

/// Legacy-peer emulation through the binary, against nbdkit with its log filter: what the
/// client is shown, what nbdtap answers itself, and what reaches the upstream.
@Suite(.enabled(if: Peers.enabled("nbdkit", "nbdsh", "nbdinfo")))
struct EmulationTests {
    /// Runs `nbdtap proxy ARGS --run CMD` against `nbdkit memory 1M` and returns the command's
    /// output, the proxy's log and nbdkit's log.
    func run(_ s: Scratch, _ args: [String], _ cmd: String) throws -> (Scratch.Result, String, String) {
        let sock = try s.nbdkit(["memory", "1M"])
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--quiet", "--log", s.path("px.log")]
                              + args + ["--run", cmd])
        let px = (try? String(contentsOfFile: s.path("px.log"), encoding: .utf8)) ?? ""
        let up = (try? String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)) ?? ""
        return (r, px, up)
    }

    func script(_ s: Scratch, _ body: String) throws -> String {
        try body.write(toFile: s.path("client.py"), atomically: true, encoding: .utf8)
        return "nbdsh -c 'import os' -c \"exec(open('\(s.path("client.py"))').read())\""
    }

    @Test func maskedFlagsAreHiddenAndAnsweredByNbdtap() throws {
        let s = try Scratch()
        let cmd = "for f in fast-zero trim zero fua flush cache; do nbdinfo --can $f $uri; echo \"can $f $?\"; done; " + (try script(s, """
            h.set_strict_mode(0)
            h.connect_uri(os.environ["uri"])
            for name, call in [("fast", lambda: h.zero(512, 0, nbd.CMD_FLAG_FAST_ZERO)), ("trim", lambda: h.trim(512, 0))]:
                try:
                    call()
                    print(name, "ok")
                except nbd.Error as e:
                    print(name, e.errno)
            h.zero(512, 0)
            print("zero ok")
            """))
        let (r, px, up) = try run(s, ["--mask", "fast-zero,trim"], cmd)
        #expect(r.status == 0, "\(r.output)")
        // nbdinfo --can: exit 0 = true, 2 = false.
        for (f, e) in [("fast-zero", 2), ("trim", 2), ("zero", 0), ("fua", 0), ("flush", 0), ("cache", 0)] {
            #expect(r.output.contains("can \(f) \(e)"), "\(f): \(r.output)")
        }
        #expect(r.output.contains("fast EINVAL") && r.output.contains("trim EINVAL") && r.output.contains("zero ok"), "\(r.output)")
        #expect(px.contains("answered=NBD_CMD_WRITE_ZEROES error=EINVAL"))
        #expect(px.contains("upstream_eflags=0xded shown_eflags=0x5cd"))
        // nbdkit never saw the refused requests: only the plain zero.
        #expect(requestCounts(up) == ["Zero trim=1 fua=0 fast=0": 1], "\(up)")
        // The README's sed pipeline counts both on nbdtap's log.
        let counted = try s.run("/bin/sh", ["-c", #"sed -n '/Zero.*\.\./ s/.*\(fast=.\).*/\1/p' "# + s.path("px.log") + " | sort | uniq -c"])
        #expect(counted.output.contains("1 fast=0") && counted.output.contains("1 fast=1"), "\(counted.output)")
    }

    @Test func readOnlyAndMaskingWriteZeroesClearsFastZero() throws {
        let s = try Scratch()
        let cmd = "nbdinfo --is read-only $uri; echo \"ro $?\"; " + (try script(s, """
            h.connect_uri(os.environ["uri"])
            print("flags", h.can_fast_zero(), h.can_zero())
            try:
                h.pwrite(b"x" * 512, 0)
            except nbd.Error as e:
                print("write", e.errno)
            """))
        let (r, _, up) = try run(s, ["--read-only", "--mask", "write-zeroes"], cmd)
        #expect(r.output.contains("ro 0"), "\(r.output)")
        #expect(r.output.contains("flags False False"), "\(r.output)")
        #expect(r.output.contains("write EPERM") || r.output.contains("write EROFS") || r.output.contains("write EINVAL"), "\(r.output)")
        #expect(requestCounts(up).isEmpty, "\(up)")
    }

    @Test func optionRefusals() throws {
        let s = try Scratch()
        let cmd = try script(s, """
            h.add_meta_context("base:allocation")
            h.connect_uri(os.environ["uri"])
            print("sr", h.get_structured_replies_negotiated(), "meta", h.can_meta_context("base:allocation"))
            assert h.pread(512, 0) == bytes(512)
            """)
        let (r, px, _) = try run(s, ["--no-structured-replies"], cmd)
        #expect(r.status == 0 && r.output.contains("sr False meta False"), "\(r.output)")
        #expect(px.contains("answered=NBD_OPT_STRUCTURED_REPLY reply=NBD_REP_ERR_UNSUP"))
        #expect(px.contains("...Option opt=STRUCTURED_REPLY reply=ERR_UNSUP"))
    }

    @Test func fastZeroSlowAndIgnore() throws {
        let s = try Scratch()
        let cmd = try script(s, """
            h.connect_uri(os.environ["uri"])
            try:
                h.zero(512, 0, nbd.CMD_FLAG_FAST_ZERO)
                print("fast ok")
            except nbd.Error as e:
                print("fast", e.errno)
            """)
        let (slow, slowLog, slowUp) = try run(s, ["--fastzeromode", "slow"], cmd)
        #expect(slow.output.contains("fast ENOTSUP"), "\(slow.output)")
        #expect(slowLog.contains("...Zero id=1 return=-1 error=ENOTSUP"))
        #expect(requestCounts(slowUp).isEmpty, "\(slowUp)")
        let s2 = try Scratch()
        let cmd2 = try script(s2, """
            h.connect_uri(os.environ["uri"])
            h.zero(512, 0, nbd.CMD_FLAG_FAST_ZERO)
            print("fast ok")
            """)
        let (ignore, ignoreLog, ignoreUp) = try run(s2, ["--fastzeromode", "ignore"], cmd2)
        #expect(ignore.output.contains("fast ok"), "\(ignore.output)")
        // The client's request carried FAST_ZERO; upstream got it without.
        #expect(requestCounts(ignoreLog)["Zero trim=1 fua=0 fast=1"] == 1)
        #expect(requestCounts(ignoreUp)["Zero trim=1 fua=0 fast=0"] == 1, "\(ignoreUp)")
    }

    @Test func profileAndUnavailableOptions() throws {
        let s = try Scratch()
        let cmd = try script(s, """
            h.connect_uri(os.environ["uri"])
            print("sr", h.get_structured_replies_negotiated(), "fz", h.can_fast_zero(), "cache", h.can_cache())
            """)
        let (r, _, _) = try run(s, ["--emulate", "nbd-server-3.24"], cmd)
        #expect(r.output.contains("sr False fz False cache False"), "\(r.output)")
        let s2 = try Scratch()
        let sock = try s2.nbdkit(["memory", "1M"])
        let bad2 = try s2.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--mask", "no-such", "--run", "true"])
        #expect(bad2.status != 0 && bad2.output.contains("no-such"), "\(bad2.output)")
    }

    /// In emulation mode every byte still goes through the message-by-message relay: a
    /// session of every command and a 64 MiB copy over four connections come out right, and
    /// nbdkit sees the same requests as the client sent.
    @Test func editedRelayCarriesRealTraffic() throws {
        try Peers.require("nbdcopy")
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "64M"])
        let src = s.path("src.img")
        try s.run("python3", ["-c", "import os; open('\(src)','wb').write(os.urandom(64 << 20))"])
        try NBDKitProxyTests.everyCommand.write(toFile: s.path("every.py"), atomically: true, encoding: .utf8)
        let cmd = "nbdsh -c 'import os' -c \"exec(open('\(s.path("every.py"))').read())\" && "
            + "nbdcopy --connections=4 --threads=4 \(src) $uri && nbdcopy $uri \(s.path("back.img"))"
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--quiet", "--log", s.path("px.log"),
                                         "--mask", "rotational", "--run", cmd], timeout: 300)
        #expect(r.status == 0, "\(r.output)")
        #expect(FileManager.default.contentsEqual(atPath: src, andPath: s.path("back.img")))
        let px = try String(contentsOfFile: s.path("px.log"), encoding: .utf8)
        let up = try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)
        #expect(requestCounts(px) == requestCounts(up))
        #expect(replyCounts(px) == replyCounts(up))
        #expect(!px.contains("Violation"))
    }

    /// The 2019 fast-zero demonstration: nbdkit with delayed writes and zeroes behind
    /// `--zeromode emulate`. A zero becomes a (delayed) WRITE upstream and succeeds; a fast
    /// zero fails with ENOTSUP from nbdtap without reaching the upstream.
    @Test func zeromodeEmulateSeedDemonstration() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["--filter=delay", "memory", "1M", "delay-write=3", "delay-zero=3"])
        let cmd = try script(s, """
            import time
            h.connect_uri(os.environ["uri"])
            t = time.time()
            h.zero(512, 0)
            print("zero ok %.2f" % (time.time() - t))
            try:
                h.zero(512, 0, nbd.CMD_FLAG_FAST_ZERO)
                print("fast ok")
            except nbd.Error as e:
                print("fast", e.errno)
            """)
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--quiet", "--log", s.path("px.log"),
                                         "--zeromode", "emulate", "--run", cmd])
        #expect(r.status == 0, "\(r.output)")
        let elapsed = r.output.split(separator: "\n").first { $0.hasPrefix("zero ok ") }.flatMap { Double($0.dropFirst(8)) }
        #expect((elapsed ?? 0) >= 3.0, "\(r.output)")  // the WRITE went through the 3 s delay
        #expect(r.output.contains("fast ENOTSUP"), "\(r.output)")
        let up = try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)
        #expect(requestCounts(up) == ["Write fua=0": 1], "\(up)")
        let counted = try s.run("/bin/sh", ["-c", #"sed -n '/Zero.*\.\./ s/.*\(fast=.\).*/\1/p' "# + s.path("px.log") + " | sort | uniq -c"])
        #expect(counted.output.contains("1 fast=0") && counted.output.contains("1 fast=1"), "\(counted.output)")
    }

    /// Emulated zeroes are split into WRITEs of at most 32 MiB (nbdkit's blocksize filter
    /// advertises no lower maximum: it splits for its plugin itself), FUA reaches every
    /// piece, and the zeroed range reads back as zeroes between untouched data.
    @Test func emulatedZeroesAreSplitAndReadBackAsZeroes() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "96M"])
        let cmd = try script(s, """
            h.connect_uri(os.environ["uri"])
            size = 82 << 20
            for off in range(0, size, 8 << 20):
                h.pwrite(b"\\xaa" * (8 << 20), off)
            h.zero(80 << 20, 512, nbd.CMD_FLAG_FUA)
            ok = h.pread(512, 0) == b"\\xaa" * 512
            for off in range(512, 512 + (80 << 20), 8 << 20):
                ok = ok and h.pread(min(8 << 20, 512 + (80 << 20) - off), off) == bytes(min(8 << 20, 512 + (80 << 20) - off))
            ok = ok and h.pread(1024, 512 + (80 << 20)) == b"\\xaa" * 1024
            print("readback", ok)
            """)
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--quiet", "--log", s.path("px.log"),
                                         "--zeromode", "emulate", "--run", cmd], timeout: 300)
        #expect(r.status == 0 && r.output.contains("readback True"), "\(r.output)")
        let up = try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8)
        let counts = requestCounts(up)
        #expect(counts.keys.filter { $0.hasPrefix("Zero") }.isEmpty, "\(counts)")
        // 80 MiB as 32 + 32 + 16 MiB, each with FUA.
        #expect(counts["Write fua=1"] == 3, "\(counts)")
        #expect(up.contains("count=0x2000000 fua=1") && up.contains("count=0x1000000 fua=1"))
        let px = try String(contentsOfFile: s.path("px.log"), encoding: .utf8)
        #expect(px.contains("zero_as_writes=3"))
        #expect(px.contains("...Zero id=12 return=0"), "\(px)")
    }

    /// `--handshake oldstyle`: the client sees an oldstyle server (nbdinfo says so) while
    /// nbdtap negotiates newstyle with nbdkit; `--mask-handshake` hides handshake flags.
    @Test func handshakeEmulation() throws {
        let s = try Scratch()
        let cmd = "nbdinfo --json $uri | grep protocol; " + (try script(s, """
            h.connect_uri(os.environ["uri"])
            h.pwrite(b"old" * 100, 0)
            print("data", h.pread(300, 0) == b"old" * 100, h.get_protocol())
            """))
        let (r, px, up) = try run(s, ["--handshake", "oldstyle"], cmd)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("\"protocol\": \"oldstyle\"") && r.output.contains("data True oldstyle"), "\(r.output)")
        #expect(px.contains("Greeting style=oldstyle"))
        #expect(px.contains("Emulate handshake=oldstyle"))
        #expect(requestCounts(up)["Write fua=0"] == 1)
        let s2 = try Scratch()
        let cmd2 = "nbdinfo --json $uri | grep protocol"
        let (r2, px2, _) = try run(s2, ["--mask-handshake", "fixed-newstyle,no-zeroes"], cmd2)
        #expect(r2.status == 0 && r2.output.contains("\"protocol\": \"newstyle\""), "\(r2.output)")
        #expect(px2.contains("Greeting style=newstyle flags=0x0"))
    }

    /// Every `--no-...` option: the client sees the option refused, and falls back.
    @Test(arguments: [("--no-meta-contexts", "meta False"), ("--no-extended-headers", "ext False"),
                      ("--no-go", "Option opt=EXPORT_NAME"), ("--no-list", "list refused"), ("--no-tls", "tls refused")])
    func optionRefusal(_ option: String, _ expected: String) throws {
        let s = try Scratch()
        let cmd = "nbdinfo --list $uri >/dev/null 2>&1 || echo 'list refused'; " + (try script(s, """
            h.add_meta_context("base:allocation")
            h.set_opt_mode(True)
            h.connect_uri(os.environ["uri"])
            try:
                h.opt_go()
            except nbd.Error:
                print("go refused")
                h.set_opt_mode(False)
                h2 = nbd.NBD()
                h2.set_request_meta_context(False) if hasattr(h2, "set_request_meta_context") else None
            print("meta", h.can_meta_context("base:allocation") if h.aio_is_ready() else False,
                  "ext", h.get_extended_headers_negotiated() if hasattr(h, "get_extended_headers_negotiated") else False)
            """)) + "; nbdsh -c 'h.set_tls(nbd.TLS_REQUIRE)' -c 'import os' -c 'h.connect_uri(os.environ[\"uri\"])' >/dev/null 2>&1 || echo 'tls refused'"
        let (r, px, _) = try run(s, [option], cmd)
        // --no-go: libnbd falls back to EXPORT_NAME, which the log shows.
        #expect(r.output.contains(expected) || px.contains(expected), "\(option): \(r.output)")
        #expect(px.contains("reply=NBD_REP_ERR_UNSUP") || option == "--no-extended-headers", "\(px)")
    }

    /// Each `--mask` feature is hidden from nbdinfo's view of the export.
    @Test(arguments: [("fua", "fua"), ("flush", "flush"), ("cache", "cache"), ("df", "df"), ("multi-conn", "multi-conn"),
                      ("write-zeroes", "zero"), ("trim", "trim"), ("fast-zero", "fast-zero")])
    func maskEachFeature(_ feature: String, _ can: String) throws {
        let s = try Scratch()
        let (r, _, _) = try run(s, ["--mask", feature], "nbdinfo --can \(can) $uri; echo \"can $?\"")
        #expect(r.output.contains("can 2"), "\(feature): \(r.output)")
    }

    /// The zero modes with a real client: none hides write zeroes, notrim forces NO_HOLE
    /// upstream, plugin leaves them to the upstream.
    @Test func zeroModesNoneNotrimPlugin() throws {
        let s = try Scratch()
        let (none, _, _) = try run(s, ["--zeromode", "none"], "nbdinfo --can zero $uri; echo \"can zero $?\"")
        #expect(none.output.contains("can zero 2"), "\(none.output)")
        let s2 = try Scratch()
        let zero = try script(s2, """
            h.connect_uri(os.environ["uri"])
            h.zero(4096, 0)
            print("zero ok")
            """)
        let (notrim, _, notrimUp) = try run(s2, ["--zeromode", "notrim"], zero)
        #expect(notrim.output.contains("zero ok"), "\(notrim.output)")
        #expect(requestCounts(notrimUp) == ["Zero trim=0 fua=0 fast=0": 1], "\(notrimUp)")
        let s3 = try Scratch()
        let zero3 = try script(s3, """
            h.connect_uri(os.environ["uri"])
            h.zero(4096, 0)
            print("zero ok")
            """)
        let (plugin, _, pluginUp) = try run(s3, ["--zeromode", "plugin"], zero3)
        #expect(plugin.output.contains("zero ok"), "\(plugin.output)")
        #expect(requestCounts(pluginUp) == ["Zero trim=1 fua=0 fast=0": 1], "\(pluginUp)")
    }

    /// Every profile, through nbdinfo's view of nbdkit: the protocol and the capabilities
    /// the profile hides.
    @Test(arguments: [("oldstyle", "\"protocol\": \"oldstyle\"", "can_fast_zero"),
                      ("pre-fast-zero", "\"can_fast_zero\": false", "can_fast_zero"),
                      ("pre-structured-replies", "\"can_df\": false", "can_df"),
                      ("nbd-server-3.24", "\"can_cache\": false", "can_cache"),
                      ("qemu-nbd-7.2", "\"can_multi_conn\": false", "can_multi_conn"),
                      ("nbdkit-1.32", "\"can_fast_zero\": true", "can_fast_zero")])
    func profiles(_ profile: String, _ expected: String, _ key: String) throws {
        let s = try Scratch()
        let (r, _, _) = try run(s, ["--emulate", profile], "nbdinfo --json $uri")
        #expect(r.status == 0 && r.output.contains(expected), "\(profile): \(r.output)")
    }

    /// An emulated WRITE_ZEROES past the end is refused before any piece is written.
    @Test func emulatedZeroPastTheEndWritesNothing() throws {
        let s = try Scratch()
        let cmd = try script(s, """
            h.set_strict_mode(0)
            h.connect_uri(os.environ["uri"])
            try:
                h.zero(2 << 20, 0)
                print("zero ok")
            except nbd.Error as e:
                print("zero", e.errno)
            """)
        let (r, px, up) = try run(s, ["--zeromode", "emulate"], cmd)
        #expect(r.output.contains("zero ENOSPC"), "\(r.output)")
        #expect(px.contains("answered=NBD_CMD_WRITE_ZEROES error=ENOSPC"), "\(px)")
        #expect(requestCounts(up).isEmpty, "\(up)")
    }

    /// nbdtap's own WRITEs (emulated zeroes) never reuse a cookie the client has in flight:
    /// with a client READ in flight under the cookie nbdtap would pick next, qemu-nbd's trace
    /// (which prints cookies) shows two different cookies, and the client gets both answers.
    @Test(.enabled(if: Peers.enabledWithQemu10())) func ownCookiesAvoidTheClients() throws {
        try Peers.requireQemu10()
        let s = try Scratch()
        try s.run("truncate", ["-s", "1M", s.path("disk.raw")])
        let sock = s.path("q.sock")
        try s.start(Peers.qemu10("qemu-nbd"), ["--persistent", "-f", "raw", "-k", sock, "--trace", "nbd_co_receive_request_decode_type",
                                             s.path("disk.raw")], name: "qemu-nbd")
        try s.waitFor(sock)
        let client = """
            import socket, struct, sys
            s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(30)
            def rx(n):
                b = b""
                while len(b) < n:
                    p = s.recv(n - len(b)); assert p, "EOF"; b += p
                return b
            rx(18); s.sendall(struct.pack(">I", 3))
            s.sendall(struct.pack(">QII", 0x49484156454F5054, 1, 0))  # EXPORT_NAME "": simple replies
            rx(10)
            X = 0x6e62647461700000
            s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, X, 0, 4096))     # READ, cookie X
            s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 6, 5, 8192, 4096))  # WRITE_ZEROES, cookie 5
            for _ in range(2):
                magic, err, cookie = struct.unpack(">IIQ", rx(16))
                data = rx(4096) if cookie == X and err == 0 else b""
                print("reply", hex(cookie), err, len(data))
            """
        try client.write(toFile: s.path("client.py"), atomically: true, encoding: .utf8)
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--quiet", "--log", s.path("px.log"),
                                         "--zeromode", "emulate", "--run", "/usr/bin/python3 \(s.path("client.py")) $unixsocket"])
        #expect(r.output.contains("reply 0x5 0 0") && r.output.contains("reply 0x6e62647461700000 0 4096"), "\(r.output)\n\(s.contents("px.log"))")
        let trace = s.output(of: "qemu-nbd").split(separator: "\n").filter { $0.contains("decode_type") }
        let cookies = trace.compactMap { $0.split(separator: " ").first { $0.hasSuffix(",") && Int($0.dropLast()) != nil } }
        #expect(trace.count == 2 && Set(cookies).count == 2, "\(trace)")
    }
}
