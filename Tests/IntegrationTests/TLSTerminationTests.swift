import Foundation
import NBDTestSupport
import Testing

/// TLS terminated by nbdtap (`--tls`, `--upstream-tls`) with real peers and credentials
/// made by certtool: what the clients read back, what nbdkit's log and qemu-nbd's trace
/// record, and nbdtap's log of the decrypted session (and of its `--pcap`).
@Suite(.enabled(if: Peers.enabledWithQemu10("nbdkit", "nbdsh", "nbdinfo", "qemu-img", "certtool")))
struct TLSTerminationTests {
    static let makeTLS = repoRoot.appendingPathComponent("Tests/IntegrationTests/Tools/make-tls.sh").path

    /// Two CAs' credentials: A for the client side, B for the upstream side.
    func credentials(_ s: Scratch) throws -> (a: String, b: String) {
        try Peers.require("certtool")
        for n in ["a", "b"] {
            let r = try s.run("/bin/sh", [Self.makeTLS, s.path(n), "nbdtap-test-\(n)"])
            try #require(r.status == 0, "\(r.output)")
        }
        return (s.path("a"), s.path("b"))
    }

    /// The nbdsh client the tests run through the proxy: writes, reads back, zeroes, flushes.
    func nbdshTLS(_ socketVar: String, _ clientDir: String?) -> String {
        let uri = clientDir.map { "nbds+unix:///?socket=\(socketVar)&tls-certificates=\($0)" } ?? "nbd+unix:///?socket=\(socketVar)"
        return """
            nbdsh -c 'h.set_uri_allow_local_file(True)' -c "h.connect_uri('\(uri)')" \
            -c 'import os; d = os.urandom(1 << 20); h.pwrite(d, 0); h.zero(65536, 2 << 20); h.flush(); print("same", h.pread(1 << 20, 0) == d, "tls", h.get_tls_negotiated())'
            """
    }

    func qemuImgTLS(_ qemuImg: String, _ clientDir: String) -> String {
        "\(qemuImg) info --image-opts --object tls-creds-x509,id=tls0,endpoint=client,dir=\(clientDir) "
            + "\"driver=nbd,server.type=unix,server.path=$unixsocket,tls-creds=tls0,tls-hostname=localhost\""
    }

    /// Request lines (without timestamps) of one connection of a log.
    func messages(_ log: String, connection: Int) -> [String] {
        log.split(separator: "\n").map(String.init)
            .filter { $0.contains(" connection=\(connection) ") && ($0.hasSuffix(" ...") || $0.contains(" return=")) }
            .map { String($0.split(separator: " ", maxSplits: 3)[3]) }
    }

    @Test func tlsClientToPlaintextNbdkit() throws {
        try Peers.requireQemu10()
        let s = try Scratch()
        let (a, _) = try credentials(s)
        let up = try s.nbdkit(["memory", "16M"])
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--tls", "require",
                                         "--tls-certificates", a + "/server", "--log", s.path("px.log"), "--quiet", "--run",
                                         nbdshTLS("$unixsocket", a + "/client") + "; " + qemuImgTLS("qemu-img", a + "/client")
                                            + "; " + qemuImgTLS(Peers.qemu10("qemu-img"), a + "/client")])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("same True tls True"), "\(r.output)")
        #expect(r.output.components(separatedBy: "virtual size: 16 MiB").count - 1 == 2, "\(r.output)")
        let px = s.contents("px.log")
        #expect(px.components(separatedBy: "Connect export=\"\" tls=1 ").count - 1 == 3, "\(px)")
        #expect(requestCounts(px) == requestCounts(s.contents("nbdkit.log")))
        #expect(requestCounts(px)["Write fua=0"] == 1)
        #expect(!px.contains(" Error "), "\(px)")
    }

    @Test func plaintextClientToNbdkitRequiringTLS() throws {
        let s = try Scratch()
        let (_, b) = try credentials(s)
        let up = try s.nbdkit(["--tls=require", "--tls-certificates=\(b)/server", "memory", "16M"])
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbds+unix:///?socket=\(up)", "--upstream-tls-certificates", b + "/client",
                                         "--log", s.path("px.log"), "--quiet", "--run", nbdshTLS("$unixsocket", nil) + "; nbdinfo \"$uri\""])
        #expect(r.output.contains("same True tls False"), "\(r.output)")
        #expect(r.output.contains("export-size: 16777216"), "\(r.output)")
        // nbdkit's log shows its side negotiated TLS, and the same requests.
        let up2 = s.contents("nbdkit.log")
        #expect(up2.contains("tls=1"), "\(up2)")
        #expect(requestCounts(s.contents("px.log")) == requestCounts(up2))
    }

    /// TLS on both sides with different CAs, to nbdkit and to qemu-nbd 10 (`--tls-creds`);
    /// the `--pcap` of the decrypted legs decodes to the proxy's own log.
    @Test(arguments: ["nbdkit", "qemu-nbd-10"])
    func tlsBothSidesWithDifferentCredentials(_ server: String) throws {
        try Peers.requireQemu10()
        let s = try Scratch()
        let (a, b) = try credentials(s)
        let up: String
        if server == "nbdkit" {
            up = try s.nbdkit(["--tls=require", "--tls-certificates=\(b)/server", "memory", "16M"])
        } else {
            try s.run("truncate", ["-s", "16M", s.path("disk.raw")])
            up = s.path("q.sock")
            try s.start(Peers.qemu10("qemu-nbd"), ["--persistent", "-f", "raw", "-k", up, "--object",
                                                 "tls-creds-x509,id=tls0,endpoint=server,dir=\(b)/server", "--tls-creds", "tls0",
                                                 "--trace", "nbd_receive_request", s.path("disk.raw")], name: "qemu-nbd")
            try s.waitFor(up)
        }
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--upstream-tls", "require",
                                         "--upstream-tls-certificates", b + "/client", "--tls", "require", "--tls-certificates", a + "/server",
                                         "--log", s.path("px.log"), "--pcap", s.path("px.pcap"), "--quiet", "--run",
                                         nbdshTLS("$unixsocket", a + "/client") + "; " + qemuImgTLS(Peers.qemu10("qemu-img"), a + "/client")
                                            + "; \(Peers.qemu10("qemu-io")) --object tls-creds-x509,id=tls0,endpoint=client,dir=\(a)/client "
                                            + "--image-opts driver=nbd,server.type=unix,server.path=$unixsocket,tls-creds=tls0,tls-hostname=localhost "
                                            + "-c 'write -P 0x5c 4M 1M' -c 'read -P 0x5c 4M 1M'"])
        #expect(r.output.contains("same True tls True"), "\(r.output)")
        #expect(r.output.contains("virtual size: 16 MiB") && r.output.contains("read 1048576/1048576 bytes at offset 4194304")
                && !r.output.contains("Pattern verification failed"), "\(r.output)")
        let px = s.contents("px.log")
        if server == "nbdkit" {
            #expect(requestCounts(px) == requestCounts(s.contents("nbdkit.log")))
        } else {
            #expect(requestCounts(px) == tracedCounts(qemuTrace(s.output(of: "qemu-nbd")).requests))
        }
        let d = try s.run(nbdtapBinary, ["decode", s.path("px.pcap"), "--log", s.path("decoded.log")])
        #expect(d.status == 0, "\(d.output)")
        let expected = messages(px, connection: 1)
        #expect(expected.count >= 8, "\(px)")
        // The client leg and the upstream leg (each decrypted) carry the same requests.
        #expect(messages(s.contents("decoded.log"), connection: 1) == expected)
        #expect(messages(s.contents("decoded.log"), connection: 2) == expected)
    }

    @Test func requireRefusesPlaintextClientsAndWrongCAsFail() throws {
        let s = try Scratch()
        let (a, b) = try credentials(s)
        let up = try s.nbdkit(["memory", "16M"])
        let px = s.path("px.sock")
        try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--listen", "nbd+unix:///?socket=\(px)",
                                   "--tls", "require", "--tls-certificates", a + "/server", "--log", s.path("px.log")], name: "px")
        try s.waitFor(px)
        // Plaintext: refused as nbdkit --tls=require refuses (NBD_REP_ERR_TLS_REQD).
        let plain = try s.run("nbdinfo", ["nbd+unix:///?socket=\(px)"])
        #expect(plain.status != 0, "\(plain.output)")
        // A client trusting another CA: its handshake fails; nbdtap logs it. (qemu checks
        // the server's certificate; libnbd 1.14 does not over a Unix socket, measured
        // against nbdkit itself too.)
        let wrong = try s.run("qemu-img", ["info", "--image-opts", "--object", "tls-creds-x509,id=tls0,endpoint=client,dir=\(b)/client",
                                           "driver=nbd,server.type=unix,server.path=\(px),tls-creds=tls0,tls-hostname=localhost"])
        #expect(wrong.status != 0 && wrong.output.lowercased().contains("certificate"), "\(wrong.output)")
        // A client that drops in the middle of the TLS handshake.
        let drop = try s.run("/usr/bin/python3", ["-c", """
            import socket, struct
            s = socket.socket(socket.AF_UNIX); s.connect("\(px)")
            s.recv(18, socket.MSG_WAITALL); s.sendall(struct.pack(">I", 3) + struct.pack(">QII", 0x49484156454F5054, 5, 0))
            print("starttls reply", struct.unpack(">QIII", s.recv(20, socket.MSG_WAITALL))[2])
            s.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))
            s.close()
            """])
        #expect(drop.output.contains("starttls reply 1"), "\(drop.output)")
        // The others carry on: a right client works afterwards.
        let good = try s.run("nbdinfo", ["nbds+unix:///?socket=\(px)&tls-certificates=\(a)/client"])
        #expect(good.status == 0 && good.output.contains("with TLS"), "\(good.output)")
        // The log reaches its file every 100 ms from one of the event loops, which in a
        // debug build spends up to a second on the three handshakes above (BoringSSL
        // unoptimized): wait (up to 10 s) for the last connection's last line.
        let t0 = Date()
        while !s.contents("px.log").contains("connection=4 Disconnect") && Date().timeIntervalSince(t0) < 10 { usleep(20_000) }
        let log = s.contents("px.log")
        #expect(log.contains("Refused option=NBD_OPT_"), "\(log)")
        #expect(log.contains("connection=2 Error side=client"), "\(log)")
        #expect(log.contains("connection=3 Error side=client"), "\(log)")
    }

    /// psktool's key files: nbdtap's client side and upstream side with pre-shared keys,
    /// nbdsh (libnbd's `tls-psk-file`) and qemu-img 7.2 and 10 (`tls-creds-psk`) to nbdkit
    /// `--tls=require --tls-psk`; a client with another key fails, and nbdtap says so.
    @Test func preSharedKeysBothSides() throws {
        try Peers.requireQemu10()
        let s = try Scratch()
        try Peers.require("psktool")
        for f in ["keys", "upstream", "wrong"] {
            try s.run("psktool", ["-u", "alice", "-p", s.path("\(f).psk")])
        }
        try FileManager.default.createDirectory(atPath: s.path("qemu-psk"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: s.path("keys.psk"), toPath: s.path("qemu-psk/keys.psk"))
        let up = try s.nbdkit(["--tls=require", "--tls-psk=\(s.path("upstream.psk"))", "memory", "16M"])
        func nbdsh(_ keys: String) -> String {
            "nbdsh -c 'h.set_uri_allow_local_file(True)' -c \"h.connect_uri('nbds+unix://alice@/?socket=$unixsocket&tls-psk-file=\(keys)')\" "
                + "-c 'import os; d = os.urandom(1 << 20); h.pwrite(d, 0); h.flush(); print(\"same\", h.pread(1 << 20, 0) == d, \"tls\", h.get_tls_negotiated())'"
        }
        func qemuImg(_ tool: String) -> String {
            "\(tool) info --image-opts --object tls-creds-psk,id=tls0,endpoint=client,dir=\(s.path("qemu-psk")),username=alice "
                + "\"driver=nbd,server.type=unix,server.path=$unixsocket,tls-creds=tls0\""
        }
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--upstream-tls", "require",
                                         "--upstream-tls-psk", s.path("upstream.psk"), "--tls", "require", "--tls-psk", s.path("keys.psk"),
                                         "--log", s.path("px.log"), "--quiet", "--run",
                                         [nbdsh(s.path("keys.psk")), qemuImg("qemu-img"), qemuImg(Peers.qemu10("qemu-img")), nbdsh(s.path("wrong.psk"))]
                                            .joined(separator: "; ")])
        #expect(r.output.contains("same True tls True"), "\(r.output)")
        #expect(r.output.components(separatedBy: "virtual size: 16 MiB").count - 1 == 2, "\(r.output)")
        #expect(r.output.contains("gnutls_handshake"), "\(r.output)")
        let px = s.contents("px.log")
        #expect(requestCounts(px) == requestCounts(s.contents("nbdkit.log")))
        #expect(px.contains("connection=4 Error side=client"), "\(px)")
    }

    /// Failures on the upstream side: a certificate for another name (server name checking
    /// is on), and an upstream requiring TLS while nbdtap's upstream side is off (its
    /// NBD_REP_ERR_TLS_REQD reaches the client).
    @Test func upstreamNameMismatchAndTLSRequiredUpstream() throws {
        let s = try Scratch()
        let (a, b) = try credentials(s)
        let up = try s.nbdkit(["--tls=require", "--tls-certificates=\(b)/server", "memory", "16M"])
        let mismatch = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbds+unix:///?socket=\(up)", "--upstream-tls-certificates", b + "/client",
                                                "--upstream-tls-hostname", "storage.example.com", "--log", s.path("m.log"), "--quiet",
                                                "--run", "nbdinfo \"$uri\"; qemu-img info \"$uri\""])
        #expect(mismatch.status != 0, "\(mismatch.output)")
        #expect(s.contents("m.log").contains("Error side=server"), "\(s.contents("m.log"))")
        // The client is told why in its option's reply (qemu prints it; libnbd 1.14 prints
        // only ESHUTDOWN's text).
        #expect(mismatch.output.contains("server reported: nbdtap: TLS with the upstream failed:")
                && mismatch.output.contains("storage.example.com"), "\(mismatch.output)")
        #expect(mismatch.output.contains("nbd_opt_go: server replied with error"), "\(mismatch.output)")
        let off = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--tls", "on", "--tls-certificates", a + "/server",
                                           "--log", s.path("o.log"), "--quiet", "--run", "nbdinfo \"$uri\""])
        #expect(off.status != 0, "\(off.output)")
        #expect(s.contents("o.log").contains("reply=ERR_TLS_REQD"), "\(s.contents("o.log"))")
    }

    /// `--tls-verify-peer`: a client without a certificate from the CA is refused, one with
    /// it gets in (qemu-img sends client-cert.pem from its creds directory).
    @Test func verifyPeerChecksClientCertificates() throws {
        let s = try Scratch()
        let (a, b) = try credentials(s)
        let up = try s.nbdkit(["memory", "16M"])
        // A directory with a's CA (to trust nbdtap) and no client certificate. (qemu checks
        // its own certificate against its CA when loading, so it cannot send b's.)
        try FileManager.default.createDirectory(atPath: s.path("mixed"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(a)/client/ca-cert.pem", toPath: s.path("mixed/ca-cert.pem"))
        _ = b
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--tls", "require", "--tls-certificates", a + "/server",
                                         "--tls-verify-peer", "--log", s.path("px.log"), "--quiet", "--run",
                                         qemuImgTLS("qemu-img", a + "/client") + "; echo good $?; " + qemuImgTLS("qemu-img", s.path("mixed")) + "; echo mixed $?"])
        #expect(r.output.contains("good 0") && r.output.contains("mixed 1"), "\(r.output)")
        #expect(s.contents("px.log").contains("connection=2 Error side=client"), "\(s.contents("px.log"))")
    }
}

