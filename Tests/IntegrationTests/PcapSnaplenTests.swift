import Foundation
import NBDTestSupport
import Testing

/// `nbdtap proxy --pcap F --pcap-snaplen N` between nbdsh/nbdcopy and nbdkit: every record
/// is cut at N bytes, yet every request and reply is in the file. The independent sources
/// are nbdkit's own log (`--filter=log`) and tshark; the proxy's `--stats` is the third.
@Suite(.enabled(if: Peers.enabled("nbdkit", "nbdsh", "nbdcopy", "tshark", "tcpdump")))
struct PcapSnaplenTests {
    /// The records of a classic pcap file: (captured length, original length, link family).
    static func records(_ path: String) throws -> (snaplen: UInt32, records: [(caplen: Int, origlen: Int, family: UInt32)]) {
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        func u32(_ at: Int) -> UInt32 { d.subdata(in: at..<(at + 4)).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } }
        #expect(u32(0) == 0xa1b2_c3d4)
        var out: [(Int, Int, UInt32)] = []
        var at = 24
        while at + 16 <= d.count {
            let cap = Int(u32(at + 8)), orig = Int(u32(at + 12))
            out.append((cap, orig, cap >= 4 ? u32(at + 16) : 0))
            at += 16 + cap
        }
        #expect(at == d.count, "the file ends inside a record")
        return (u32(16), out)
    }

    /// Requests per command in nbdkit's log filter output (lines ending " ...").
    static func nbdkitRequests(_ log: String) -> [String: Int] {
        let names = ["Read": "READ", "Write": "WRITE", "Zero": "WRITE_ZEROES", "Trim": "TRIM", "Flush": "FLUSH",
                     "Extents": "BLOCK_STATUS", "Cache": "CACHE"]
        var counts: [String: Int] = [:]
        for line in log.split(separator: "\n") where line.hasSuffix(" ...") {
            let words = line.split(separator: " ")
            guard let i = words.firstIndex(where: { $0.hasPrefix("connection=") }), i + 1 < words.count,
                  let name = names[String(words[i + 1])] else { continue }
            counts[name, default: 0] += 1
        }
        return counts
    }

    /// Requests per command in a `--stats-format json` file.
    static func statsRequests(_ path: String) throws -> [String: Int] {
        let j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
        let commands = (j?["commands"] as? [String: [String: Any]]) ?? [:]
        return commands.compactMapValues { $0["requests"] as? Int }.filter { $0.value > 0 }
    }

    static let client = """
        h.add_meta_context("base:allocation")
        h.connect_uri(os.environ["uri"])
        for i in range(8):
            h.pwrite(bytes([i + 1]) * (1 << 20), i << 20, nbd.CMD_FLAG_FUA if i == 0 else 0)
        for i in range(64):
            h.pread(4096, i * 12288)
        h.pread(2 << 20, 1 << 20)
        h.zero(65536, 16 << 20, nbd.CMD_FLAG_FAST_ZERO)
        h.trim(65536, 20 << 20)
        h.flush()
        h.block_status(32 << 20, 0, lambda *a: 0)
        h.shutdown()
        """

    @Test(arguments: ["unix", "tcp", "tcp6"])
    func snaplenCaptureKeepsEveryHeader(_ listen: String) throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "64M"])
        let port = freePort()
        let listenURI: String
        switch listen {
        case "unix": listenURI = "nbd+unix:///?socket=\(s.path("px.sock"))"
        case "tcp": listenURI = "nbd://127.0.0.1:\(port)/"
        default: listenURI = "nbd://[::1]:\(port)/"
        }
        try Self.client.write(toFile: s.path("client.py"), atomically: true, encoding: .utf8)
        let pcap = s.path("px.pcap")
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--listen", listenURI, "--quiet",
                                         "--log", s.path("px.log"), "--stats", s.path("px.json"), "--stats-format", "json",
                                         "--pcap", pcap, "--pcap-snaplen", "128",
                                         "--run", "nbdsh -c 'import os' -c \"exec(open('\(s.path("client.py"))').read())\" && nbdcopy --connections=4 $uri null:"])
        #expect(r.status == 0, "\(r.output)")
        let nbdkit = Self.nbdkitRequests(try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8))
        #expect(nbdkit["WRITE"] == 8 && (nbdkit["READ"] ?? 0) >= 65, "\(nbdkit)")
        // The proxy's own statistics agree with nbdkit's log (which logs NBD_CMD_DISC as
        // "Disconnect", not as a request).
        let proxyStats = try Self.statsRequests(s.path("px.json"))
        #expect(proxyStats.filter { $0.key != "DISC" } == nbdkit)

        // Every record is cut at 128 bytes, and the original lengths carry the whole
        // transfer (8 MiB written and read back, twice: both legs).
        let (snaplen, records) = try Self.records(pcap)
        #expect(snaplen == 128)
        #expect(records.allSatisfy { $0.caplen <= 128 })
        #expect(records.reduce(0) { $0 + $1.origlen } > 4 * 8 << 20)
        #expect(records.reduce(0) { $0 + 16 + $1.caplen } < (8 << 20) / 4, "payloads were recorded")
        if listen == "tcp6" { #expect(records.contains { $0.family == 24 }, "the client leg is IPv6") }

        // nbdtap decode finds every request on both legs: twice the proxy's counts.
        let decoded = try s.run(nbdtapBinary, ["decode", pcap, "--stats", s.path("decoded.json"), "--stats-format", "json",
                                               "--log", s.path("decoded.log")])
        #expect(decoded.status == 0, "\(decoded.output)")
        #expect(try Self.statsRequests(s.path("decoded.json")) == proxyStats.mapValues { $0 * 2 })
        let decodedLog = try String(contentsOfFile: s.path("decoded.log"), encoding: .utf8)
        #expect(!decodedLog.contains("Violation"), "\(decodedLog.split(separator: "\n").filter { $0.contains("Violation") }.prefix(3))")

        // tshark finds the READ requests of the upstream leg (the stand-in 127.2.0.2:10809),
        // several to a packet when nbdcopy pipelines them: its NBD dissector reads each
        // header from the cut capture. (tshark 4.0 shows a WRITE only with its data
        // reassembled, which no capture cut at 128 bytes has, tcpdump's included.)
        let t = try s.run("tshark", ["-r", pcap, "-Y", "nbd.magic == 0x25609513 && ip.dst == 127.2.0.2",
                                     "-T", "fields", "-e", "nbd.type"])
        #expect(t.status == 0, "\(t.output)")
        let types = t.output.split(separator: "\n").flatMap { $0.split(separator: ",") }.compactMap { Int($0) }
        #expect(types.filter { $0 == 0 }.count == nbdkit["READ"], "\(t.output.prefix(400))")
    }

    /// Without a snapshot length the capture holds every payload byte. By default once: on
    /// the client leg, where tshark's reassembly of the client stream contains the 1 MiB
    /// block nbdsh wrote and its reassembly of the server stream the block it read back,
    /// while the upstream leg's packets carry the lengths and headers only (nbdtap decode
    /// still finds every request there). With `--pcap-payloads both`, both legs hold the
    /// blocks. tshark's expert analysis finds no sequence or acknowledgement trouble on any
    /// leg either way.
    @Test(arguments: [("unix", "once"), ("tcp6", "once"), ("unix", "both")])
    func fullCaptureCarriesTheBytes(_ listen: String, _ payloads: String) throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "64M"])
        let listenURI = listen == "unix" ? "nbd+unix:///?socket=\(s.path("px.sock"))" : "nbd://[::1]:\(freePort())/"
        let script = """
            h.connect_uri(os.environ["uri"])
            block = bytes(range(256)) * 4096
            h.pwrite(block, 0)
            assert h.pread(1 << 20, 0) == block
            h.shutdown()
            """
        try script.write(toFile: s.path("client.py"), atomically: true, encoding: .utf8)
        let pcap = s.path("px.pcap")
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--listen", listenURI, "--quiet",
                                         "--pcap", pcap, "--stats", s.path("px.json"), "--stats-format", "json"]
                                        + (payloads == "both" ? ["--pcap-payloads", "both"] : [])
                                        + ["--run", "nbdsh -c 'import os' -c \"exec(open('\(s.path("client.py"))').read())\""])
        #expect(r.status == 0, "\(r.output)")
        let (_, records) = try Self.records(pcap)
        let recorded = records.reduce(0) { $0 + $1.caplen }, original = records.reduce(0) { $0 + $1.origlen }
        #expect(original > 4 << 20, "two legs, 1 MiB each way")
        if payloads == "both" {
            #expect(records.allSatisfy { $0.caplen == $0.origlen })
        } else {
            #expect(recorded > 2 << 20 && recorded < (2 << 20) + (1 << 20), "payloads once: \(recorded) of \(original) bytes")
        }
        let block = Data((0..<(1 << 20)).map { UInt8($0 % 256) })
        // tcp.stream 1 is the upstream leg (the client leg opens first).
        for stream in [0, 1] {
            let f = try s.run("tshark", ["-r", pcap, "-q", "-z", "follow,tcp,raw,\(stream)"])
            #expect(f.status == 0)
            var toServer = Data(), toClient = Data()
            for line in f.output.split(separator: "\n") {
                let hex = line.trimmingCharacters(in: .whitespaces)
                guard !hex.isEmpty, hex.allSatisfy(\.isHexDigit), hex.count % 2 == 0 else { continue }
                var bytes = Data(capacity: hex.count / 2)
                var i = hex.startIndex
                while i < hex.endIndex {
                    let j = hex.index(i, offsetBy: 2)
                    bytes.append(UInt8(hex[i..<j], radix: 16)!)
                    i = j
                }
                if line.hasPrefix("\t") { toClient.append(bytes) } else { toServer.append(bytes) }
            }
            let whole = stream == 0 || payloads == "both"
            #expect((toServer.range(of: block) != nil) == whole, "stream \(stream): the WRITE's data")
            #expect((toClient.range(of: block) != nil) == whole, "stream \(stream): the READ's data")
        }
        let expert = try s.run("tshark", ["-r", pcap, "-q", "-z", "expert,warn"])
        #expect(expert.status == 0)
        for trouble in ["Previous segment", "ACKed segment", "out-of-order", "retransmission", "Malformed"] {
            #expect(!expert.output.localizedCaseInsensitiveContains(trouble), "\(expert.output)")
        }
        // Both legs decode to the proxy's requests (nbdsh's WRITE, READ and DISC).
        let proxyStats = try Self.statsRequests(s.path("px.json"))
        #expect(proxyStats == ["WRITE": 1, "READ": 1, "DISC": 1])
        let decoded = try s.run(nbdtapBinary, ["decode", pcap, "--stats", s.path("d.json"), "--stats-format", "json",
                                               "--log", s.path("d.log")])
        #expect(decoded.status == 0, "\(decoded.output)")
        #expect(try Self.statsRequests(s.path("d.json")) == proxyStats.mapValues { $0 * 2 })
        #expect(try !String(contentsOfFile: s.path("d.log"), encoding: .utf8).contains("Violation"))
    }

    /// STARTTLS passed through: after the ACK the streams are TLS records nbdtap cannot
    /// read, so no payload spans are known; with a snapshot length every packet of them
    /// is cut as tcpdump's `-s` would, instead of the whole session being recorded in
    /// small packets. nbdkit's log says the 1 MiB write and read happened; the records'
    /// original lengths carry them, their captured bytes do not; `nbdtap decode` reads the
    /// cut file without a violation.
    @Test func starttlsPassthroughIsCutToo() throws {
        let s = try Scratch()
        let psk = s.path("keys.psk")
        try "alice:4e4244544150207465737420505348206b6579206f6e6c792c206e6f74207365\n".write(toFile: psk, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: psk)
        let sock = try s.nbdkit(["--tls=require", "--tls-psk=\(psk)", "memory", "16M"])
        let script = """
            h.set_tls(nbd.TLS_REQUIRE)
            h.set_tls_psk_file("\(psk)")
            h.set_tls_username("alice")
            h.connect_uri(os.environ["uri"])
            block = bytes(range(256)) * 4096
            h.pwrite(block, 0)
            assert h.pread(1 << 20, 0) == block
            print("tls", h.get_tls_negotiated())
            h.shutdown()
            """
        try script.write(toFile: s.path("client.py"), atomically: true, encoding: .utf8)
        let pcap = s.path("px.pcap")
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--quiet", "--log", s.path("px.log"),
                                         "--pcap", pcap, "--pcap-snaplen", "128",
                                         "--run", "nbdsh -c 'import os' -c \"exec(open('\(s.path("client.py"))').read())\""])
        #expect(r.status == 0 && r.output.contains("tls True"), "\(r.output)")
        let nbdkit = Self.nbdkitRequests(try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8))
        #expect(nbdkit["WRITE"] == 1 && nbdkit["READ"] == 1, "\(nbdkit)")
        let (snaplen, records) = try Self.records(pcap)
        #expect(snaplen == 128)
        #expect(records.allSatisfy { $0.caplen <= 128 })
        let recorded = records.reduce(0) { $0 + $1.caplen }, original = records.reduce(0) { $0 + $1.origlen }
        #expect(original > 4 << 20, "two legs, 1 MiB each way, in TLS records")
        #expect(recorded < 256 << 10, "the TLS session was recorded: \(recorded) of \(original) bytes")
        let decoded = try s.run(nbdtapBinary, ["decode", pcap, "--log", s.path("d.log")])
        #expect(decoded.status == 0, "\(decoded.output)")
        let log = try String(contentsOfFile: s.path("d.log"), encoding: .utf8)
        #expect(log.contains("...Option opt=STARTTLS reply=ACK"), "\(log.prefix(600))")
        #expect(!log.contains("Violation"), "\(log.split(separator: "\n").filter { $0.contains("Violation") }.prefix(3))")
    }

    /// With a layer the upstream leg carries other bytes than the client's (here a WRITE
    /// split by --max-payload), so the default records both legs whole, and asking for
    /// payloads once is refused.
    @Test func layersRecordBothLegsWhole() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "16M"])
        let pcap = s.path("px.pcap")
        let script = "h.connect_uri(os.environ['uri']); h.pwrite(b'\\x5a' * (1 << 20), 0); h.shutdown()"
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--quiet", "--pcap", pcap,
                                         "--max-payload", "256k", "--run", "nbdsh -c 'import os' -c \"\(script)\""])
        #expect(r.status == 0, "\(r.output)")
        let nbdkit = Self.nbdkitRequests(try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8))
        #expect(nbdkit == ["WRITE": 4], "the layer split the WRITE: \(nbdkit)")
        let (_, records) = try Self.records(pcap)
        #expect(records.allSatisfy { $0.caplen == $0.origlen })
        #expect(records.reduce(0) { $0 + $1.caplen } > 2 << 20, "the data on both legs")
        let once = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd://127.0.0.1:1", "--pcap", s.path("p.pcap"),
                                            "--pcap-payloads", "once", "--delay", "read=1ms", "--run", "true"])
        #expect(once.status != 0 && once.output.contains("--pcap-payloads once works on the transparent relay only"), "\(once.output)")
    }

    /// A proxy stopped by SIGTERM leaves a whole file: the batches are written at exit,
    /// after the drain closed each leg with its FIN; nbdkit's log is the count to meet.
    @Test func sigtermLeavesAReadableCapture() throws {
        let s = try Scratch()
        let sock = try s.nbdkit(["memory", "16M"])
        let pcap = s.path("px.pcap")
        let proxy = try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(sock)", "--quiet",
                                               "--listen", "nbd+unix:///?socket=\(s.path("px.sock"))",
                                               "--pcap", pcap, "--pcap-snaplen", "100"], name: "proxy")
        try s.waitFor(s.path("px.sock"))
        let r = try s.nbdsh("nbd+unix:///?socket=\(s.path("px.sock"))", """
            h.connect_uri(os.environ["uri"])
            h.pwrite(b"y" * (1 << 20), 0)
            h.pread(1 << 20, 0)
            h.flush()
            h.shutdown()
            """)
        #expect(r.status == 0, "\(r.output)")
        proxy.terminate()
        proxy.waitUntilExit()
        #expect(proxy.terminationStatus == 0)
        let (_, records) = try Self.records(pcap)
        #expect(records.allSatisfy { $0.caplen <= 100 })
        let dump = try s.run("tcpdump", ["-r", pcap, "-n"])
        #expect(dump.status == 0 && dump.output.contains("Flags [F.]"), "\(dump.output.suffix(400))")
        let decoded = try s.run(nbdtapBinary, ["decode", pcap, "--stats", s.path("d.json"), "--stats-format", "json", "--log", "/dev/null"])
        #expect(decoded.status == 0, "\(decoded.output)")
        let nbdkit = Self.nbdkitRequests(try String(contentsOfFile: s.path("nbdkit.log"), encoding: .utf8))
        #expect(nbdkit == ["WRITE": 1, "READ": 1, "FLUSH": 1])
        #expect(try Self.statsRequests(s.path("d.json")).filter { $0.key != "DISC" } == nbdkit.mapValues { $0 * 2 })
    }

    @Test func snaplenIsRefusedWithLayers() throws {
        let s = try Scratch()
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd://127.0.0.1:1", "--pcap", s.path("p.pcap"),
                                         "--pcap-snaplen", "128", "--delay", "read=1ms", "--run", "true"])
        #expect(r.status != 0 && r.output.contains("--pcap-snaplen works on the transparent relay only"), "\(r.output)")
        let small = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd://127.0.0.1:1", "--pcap", s.path("p.pcap"),
                                             "--pcap-snaplen", "40", "--run", "true"])
        #expect(small.status != 0 && small.output.contains("--pcap-snaplen must be"), "\(small.output)")
    }
}
