import Foundation
import NBDTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `nbdtap plot`, `decode --plot` and `proxy --plot`: pages a real browser renders, whose
/// marks add up to what `decode` and the servers' own logs count.
@Suite(.enabled(if: Peers.enabled("chromium", "python3")))
struct PlotTests {
    /// Marks per command read from the page's SVG: a `data-cmd` mark is one request, an
    /// aggregated cell carries `data-counts="READ=3 WRITE=2"`.
    static func markCounts(_ html: String) -> [String: Int] {
        var counts: [String: Int] = [:]
        let mark = try! NSRegularExpression(pattern: #"<rect class="mark[^"]*" data-cmd="([A-Z_0-9]+)""#)
        for m in mark.matches(in: html, range: NSRange(html.startIndex..., in: html)) {
            counts[String(html[Range(m.range(at: 1), in: html)!]), default: 0] += 1
        }
        let cell = try! NSRegularExpression(pattern: #"<rect class="cell[^"]*" data-counts="([^"]*)""#)
        for m in cell.matches(in: html, range: NSRange(html.startIndex..., in: html)) {
            for pair in html[Range(m.range(at: 1), in: html)!].split(separator: " ") {
                let kv = pair.split(separator: "=")
                counts[String(kv[0]), default: 0] += Int(kv[1])!
            }
        }
        return counts
    }

    /// nbdkit's log counts (by action and flags) as requests per command, as nbdtap names them.
    static func byCommand(_ counts: [String: Int]) -> [String: Int] {
        let names = ["Write": "WRITE", "Read": "READ", "Zero": "WRITE_ZEROES", "Trim": "TRIM", "Flush": "FLUSH", "Extents": "BLOCK_STATUS", "Cache": "CACHE"]
        var out: [String: Int] = [:]
        for (k, v) in counts { out[names[String(k.split(separator: " ")[0])] ?? k, default: 0] += v }
        return out
    }

    /// The marks of one kind (`err`, `fz`, ...) on the page's individual marks.
    static func marks(_ html: String, withClass cls: String) -> Int {
        let re = try! NSRegularExpression(pattern: #"<rect class="mark[^"]*\b"# + cls + #"\b[^"]*""#)
        return re.numberOfMatches(in: html, range: NSRange(html.startIndex..., in: html))
    }

    /// Requests per command from decode's JSON statistics.
    static func decodeCounts(_ s: Scratch, _ file: String) throws -> [String: Int] {
        let out = s.path("decode-\(UUID().uuidString.prefix(6)).json")
        try s.run(nbdtapBinary, ["decode", file, "--view", "summary", "--stats-format", "json", "--stats", out])
        let j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as! [String: Any]
        return (j["commands"] as! [String: [String: Any]]).mapValues { $0["requests"] as! Int }.filter { $0.value > 0 }
    }

    /// Renders the page in headless Chromium: the page's own script must have run without
    /// an error (it sets `data-status="ok ..."`), no console error, and the screenshot must
    /// show a picture (not a blank page).
    static func render(_ s: Scratch, _ page: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        try Peers.require("chromium", sourceLocation: sourceLocation)
        let png = page + ".png"
        let r = try s.run("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
                                       "--user-data-dir=\(s.path("chromium-profile"))", "--window-size=1200,900",
                                       "--screenshot=\(png)", "--dump-dom", "file://\(page)"], timeout: 90)
        #expect(r.output.contains("data-status=\"ok marks="), "the page's script did not finish: \(r.output.suffix(600))", sourceLocation: sourceLocation)
        #expect(!r.output.contains("Uncaught"), "script error: \(r.output.suffix(600))", sourceLocation: sourceLocation)
        let check = try s.run("python3", [repoRoot.appendingPathComponent("Tests/IntegrationTests/Tools/png_check.py").path, png])
        let fields = Dictionary(uniqueKeysWithValues: check.output.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { f -> (String, Double)? in
            let kv = f.split(separator: "=")
            return kv.count == 2 ? (String(kv[0]), Double(kv[1]) ?? 0) : nil
        })
        #expect((fields["nonwhite"] ?? 0) > 0.05 && (fields["colors"] ?? 0) > 8, "blank screenshot: \(check.output)", sourceLocation: sourceLocation)
    }

    /// Every capture and transcript of Captures/: a page whose marks match decode's request
    /// counts; every pcap's page rendered in Chromium.
    @Test func everyCaptureDrawsDecodesCounts() throws {
        let s = try Scratch()
        let root = repoRoot.appendingPathComponent("Captures")
        var inputs: [String] = []
        for dir in try FileManager.default.contentsOfDirectory(atPath: root.path).sorted() {
            let d = root.appendingPathComponent(dir)
            for f in (try? FileManager.default.contentsOfDirectory(atPath: d.path))?.sorted() ?? []
            where f.hasSuffix(".pcap") || f.hasSuffix(".pcapng") || f.hasSuffix(".nbdt") {
                inputs.append(d.appendingPathComponent(f).path)
            }
        }
        #expect(inputs.count >= 40)
        for (i, input) in inputs.enumerated() {
            let page = s.path("page-\(i).html")
            try s.run(nbdtapBinary, ["plot", input, "-o", page])
            let html = try String(contentsOfFile: page, encoding: .utf8)
            let want = try Self.decodeCounts(s, input)
            #expect(Self.markCounts(html) == want, "\(input)")
            if input.hasSuffix("pcap") { try Self.render(s, page) }
        }
        // decode --plot writes the same picture while decoding.
        let input = repoRoot.appendingPathComponent("Captures/nbdcopy-multiconn/session.pcap").path
        try s.run(nbdtapBinary, ["decode", input, "--view", "summary", "--stats", "/dev/null", "--plot", s.path("decode.html")])
        let fromDecode = try String(contentsOfFile: s.path("decode.html"), encoding: .utf8)
        #expect(Self.markCounts(fromDecode) == (try Self.decodeCounts(s, input)))
        #expect(fromDecode.contains("connection 4"))
    }

    /// Runs the nbdsh `script` through `nbdtap proxy ARGS` in front of the nbdkit at `up`,
    /// stops the proxy, and returns nbdkit's own request counts by command (and the DISC
    /// nbdsh's shutdown sends, which nbdkit logs only as a Disconnect).
    func throughProxy(_ s: Scratch, _ up: String, _ arguments: [String], _ script: String,
                      sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Int] {
        let px = s.path("px.sock")
        let proxy = try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--listen", "nbd+unix:///?socket=\(px)", "--quiet"]
                                + arguments, name: "px")
        try s.waitFor(px)
        let r = try s.nbdsh("nbd+unix:///?socket=\(px)", "h = nbd.NBD()\nh.connect_uri(os.environ[\"uri\"])\n" + script + "\nh.shutdown()\n")
        #expect(r.status == 0, "\(r.output)", sourceLocation: sourceLocation)
        kill(proxy.processIdentifier, SIGTERM)
        try waitForExit(proxy)
        var want = Self.byCommand(requestCounts(s.contents("nbdkit.log")))
        want["DISC"] = 1
        return want
    }

    /// proxy --plot and a plot of the proxy's JSON log draw the same requests, which are
    /// the ones nbdkit logged, with the TRIMs nbdkit's error filter failed marked as errors
    /// and the fast zeroes hatched.
    @Test(.enabled(if: Peers.enabled("nbdkit", "nbdsh"))) func proxyPlotAndJSONLogMatchNBDKit() throws {
        let s = try Scratch()
        let up = try s.nbdkit(["--filter=error", "memory", "64M", "error-trim-rate=1", "error=EIO"])
        let want = try throughProxy(s, up, ["--log", s.path("px.json"), "--log-format", "json", "--plot", s.path("live.html")], """
            for i in range(40): h.pwrite(b"x" * 65536, i * 65536)
            for i in range(4): h.zero(8 << 20, (16 + 8 * i) << 20, nbd.CMD_FLAG_FAST_ZERO)
            for i in range(3):
                try: h.trim(65536, i * 65536)
                except nbd.Error: pass
            h.flush()
            for i in range(20): h.pread(4096, i * 4096)
            """)
        #expect(want["TRIM"] == 3 && want["WRITE_ZEROES"] == 4)
        try s.run(nbdtapBinary, ["plot", s.path("px.json"), "-o", s.path("json.html")])
        for page in ["live.html", "json.html"] {
            let html = try String(contentsOfFile: s.path(page), encoding: .utf8)
            #expect(Self.markCounts(html) == want, "\(page)")
            #expect(Self.marks(html, withClass: "err") == 3, "\(page)")
            #expect(Self.marks(html, withClass: "fz") == 4, "\(page)")
            try Self.render(s, s.path(page))
        }
    }

    /// A session past the mark limit is drawn as cells: the page stays small and its cells
    /// still count every request nbdkit logged.
    @Test(.enabled(if: Peers.enabled("nbdkit", "nbdsh"))) func longSessionIsAggregated() throws {
        let s = try Scratch()
        let up = try s.nbdkit(["memory", "64M"])
        let want = try throughProxy(s, up, ["--plot", s.path("long.html")], """
            for i in range(12000): h.pread(512, (i * 4096) % (64 << 20))
            for i in range(500): h.pwrite(b"y" * 512, (i * 8192) % (64 << 20))
            """)
        #expect(want["READ"] == 12000 && want["WRITE"] == 500)
        let html = try String(contentsOfFile: s.path("long.html"), encoding: .utf8)
        #expect(Self.markCounts(html) == want)
        #expect(!html.contains("<rect class=\"mark"))
        #expect(html.utf8.count < 2_000_000, "\(html.utf8.count) bytes")
        try Self.render(s, s.path("long.html"))
    }
}
