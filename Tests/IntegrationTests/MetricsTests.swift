import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `--metrics`: what a real Prometheus server scrapes from nbdtap while nbdcopy and nbdsh
/// run through it equals nbdtap's own statistics at exit; the endpoint speaks the text
/// format and HTTP/1 (keep-alive, 404, 405, bounded requests); its address follows the
/// rule of `--listen`.
@Suite(.serialized)
struct MetricsTests {
    /// Starts `nbdtap proxy` with `--metrics`, waits for its metrics line; returns the
    /// process, the port it printed, and its Unix socket.
    func proxy(_ s: Scratch, upstream: String, metrics: String, _ extra: [String] = []) throws -> (Process, Int, String) {
        let sock = s.path("px.sock")
        let p = try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(upstream)", "--listen", "nbd+unix:///?socket=\(sock)",
                                           "--metrics", metrics, "--quiet"] + extra, name: "px")
        var port: Int?
        try waitUntil("nbdtap's metrics line") {
            let out = s.output(of: "px")
            if let r = out.range(of: #"nbdtap: metrics on http://127\.0\.0\.1:[0-9]+/metrics"#, options: .regularExpression) {
                port = Int(out[r].split(separator: ":").last!.split(separator: "/").first!)
            }
            return port != nil || !p.isRunning
        }
        try s.waitFor(sock)
        return (p, try #require(port, "\(s.output(of: "px"))"), sock)
    }

    /// The result of a PromQL instant query: labels and value of each series.
    func query(_ port: Int, _ promql: String) throws -> [([String: String], Double)] {
        let q = promql.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        // HTTP/1.0: the Go server then sends the body unchunked and closes.
        guard let r = try httpExchange(port: port, ["GET /api/v1/query?query=\(q) HTTP/1.0\r\n\r\n"]).first, r.status == 200,
              let j = try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any],
              let data = j["data"] as? [String: Any], let result = data["result"] as? [[String: Any]] else { return [] }
        return result.compactMap { series in
            guard let metric = series["metric"] as? [String: String], let value = series["value"] as? [Any],
                  let text = value.last as? String, let v = Double(text) else { return nil }
            return (metric, v)
        }
    }

    /// Every nbdtap series Prometheus holds now, with its labels (`__name__` among them).
    func everything(_ port: Int) throws -> [([String: String], Double)] {
        try query(port, #"{__name__=~"nbdtap_.*"}"#)
    }

    /// The sum of the series of `name` whose labels include `labels`.
    func total(_ series: [([String: String], Double)], _ name: String, _ labels: [String: String] = [:]) -> Double {
        series.filter { m, _ in m["__name__"] == name && labels.allSatisfy { m[$0.key] == $0.value } }.reduce(0) { $0 + $1.1 }
    }

    @Test(.enabled(if: Peers.enabled("nbdkit", "nbdsh", "nbdcopy", "prometheus")))
    func prometheusScrapesWhatTheStatisticsCount() throws {
        try Peers.require("nbdkit", "nbdsh", "nbdcopy", "prometheus")
        let s = try Scratch()
        let up = try s.nbdkit(["memory", "4M"], logFilter: false)
        let metricsPort = freePort()
        let (px, _, sock) = try proxy(s, upstream: up, metrics: "127.0.0.1:\(metricsPort)", ["--stats", s.path("st.json"), "--stats-format", "json"])
        let uri = "nbd+unix:///?socket=\(sock)"
        // A Prometheus of the test's own, scraping only this nbdtap, every second.
        let promPort = freePort()
        try """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: nbdtap
                static_configs:
                  - targets: ['127.0.0.1:\(metricsPort)']
            """.write(toFile: s.path("prometheus.yml"), atomically: true, encoding: .utf8)
        let prometheus = try s.start("prometheus", ["--config.file=\(s.path("prometheus.yml"))", "--storage.tsdb.path=\(s.path("tsdb"))",
                                              "--web.listen-address=127.0.0.1:\(promPort)"], name: "prometheus")
        try s.waitForPort(promPort, timeout: 60)
        // It has scraped nbdtap once before the workload starts.
        try waitUntil("Prometheus's first scrape", timeout: 60) { try !query(promPort, "nbdtap_connections_total").isEmpty }

        // nbdcopy (multi-conn: several connections at once) 4 MiB in and back out.
        let data = FileHandle(forReadingAtPath: "/dev/urandom")!.readData(ofLength: 4 << 20)
        try data.write(to: URL(fileURLWithPath: s.path("in.bin")))
        var r = try s.run("nbdcopy", [s.path("in.bin"), uri])
        #expect(r.status == 0, "\(r.output)")
        r = try s.run("nbdcopy", [uri, s.path("out.bin")])
        #expect(r.status == 0, "\(r.output)")
        #expect(FileManager.default.contents(atPath: s.path("out.bin")) == data)
        // nbdsh: writes, a fast and a plain zero, a trim, a flush, and a read past the end
        // (strict mode off, so the server answers it EINVAL).
        r = try s.nbdsh(uri, """
            import nbd
            h = nbd.NBD()
            h.connect_uri(os.environ["uri"])
            for i in range(3): h.pwrite(b"m" * 65536, i * 65536)
            h.zero(65536, 262144, nbd.CMD_FLAG_FAST_ZERO)
            h.zero(65536, 327680)
            h.zero(4096, 393216)
            h.trim(65536, 458752)
            h.flush()
            h.set_strict_mode(0)
            try:
                h.pread(4096, h.get_size())
                raise SystemExit("a read past the end succeeded")
            except nbd.Error:
                pass
            h.shutdown()
            """)
        #expect(r.status == 0, "\(r.output)")

        // Until Prometheus holds a scrape from after every connection closed, the same in
        // two scrapes running: then it has all nbdtap counted. Read now: once nbdtap exits,
        // a failed scrape marks its series stale.
        var last: [([String: String], Double)] = []
        var lastScrape = 0.0
        func keyed(_ series: [([String: String], Double)]) -> [String: Double] {
            Dictionary(series.map { m, v in (m.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","), v) }) { a, _ in a }
        }
        try waitUntil("two equal scrapes after the workload", timeout: 90) {
            let stamp = try query(promPort, "timestamp(nbdtap_connections_total)").first?.1 ?? 0
            guard stamp > lastScrape else { return false }
            let now = try everything(promPort)
            defer { (last, lastScrape) = (now, stamp) }
            return total(now, "nbdtap_connections_open") == 0 && total(now, "nbdtap_connections_total") > 0 && keyed(now) == keyed(last)
        }
        let scraped = last
        try checkFleetQueries(promPort)

        kill(px.processIdentifier, SIGTERM)
        try waitForExit(px)
        #expect(px.terminationStatus == 0)
        let stats = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.path("st.json")))) as? [String: Any])
        let commands = try #require(stats["commands"] as? [String: [String: Any]])
        func prom(_ name: String, _ labels: [String: String] = [:]) -> Double { total(scraped, name, labels) }
        // Request counts and bytes by command, errors by command and errno.
        var errorTotal = 0
        for (name, c) in commands {
            #expect(prom("nbdtap_requests_total", ["command": name]) == Double(c["requests"] as? Int ?? -1), "\(name)")
            #expect(prom("nbdtap_request_bytes_total", ["command": name]) == Double(c["bytes"] as? Int ?? -1), "\(name)")
            for (errno, n) in c["errors"] as? [String: Int] ?? [:] {
                #expect(prom("nbdtap_request_errors_total", ["command": name, "errno": errno]) == Double(n), "\(name) \(errno)")
                errorTotal += n
            }
        }
        #expect(prom("nbdtap_requests_total") == Double(stats["requests"] as? Int ?? -1))
        #expect(prom("nbdtap_request_errors_total") == Double(errorTotal))
        #expect(prom("nbdtap_request_errors_total", ["command": "READ", "errno": "EINVAL"]) >= 1, "the read past the end")
        #expect(prom("nbdtap_connections_total") == Double(stats["connections"] as? Int ?? -1))
        // Violations by code: the read past the end is one (beyond_export_size).
        let violations = stats["violations"] as? [String: Int] ?? [:]
        for (code, n) in violations {
            #expect(prom("nbdtap_protocol_violations_total", ["code": code]) == Double(n), "\(code)")
        }
        #expect(prom("nbdtap_protocol_violations_total") == Double(violations.values.reduce(0, +)))
        #expect(violations["beyond_export_size"] ?? 0 >= 1, "\(violations)")
        #expect(prom("nbdtap_read_bytes_total") == Double(commands["READ"]?["bytes"] as? Int ?? -1))
        #expect(prom("nbdtap_written_bytes_total") == Double(commands["WRITE"]?["bytes"] as? Int ?? -1))
        // The WRITE_ZEROES fast split: nbdsh sent one fast and two plain.
        let fast = try #require(commands["WRITE_ZEROES"]?["fast"] as? [String: Int])
        #expect(prom("nbdtap_write_zeroes_total", ["fast": "1"]) == Double(fast["1"] ?? -1))
        #expect(prom("nbdtap_write_zeroes_total", ["fast": "0"]) == Double(fast["0"] ?? -1))
        #expect(fast["1"] ?? 0 >= 1 && fast["0"] ?? 0 >= 2, "\(fast)")
        // nbdcopy's 4 MiB each way, at least (nbdsh added its own), over several connections.
        #expect(prom("nbdtap_written_bytes_total") >= Double(4 << 20))
        #expect(prom("nbdtap_read_bytes_total") >= Double(4 << 20))
        #expect(prom("nbdtap_connections_total") >= 3)
        #expect(prom("nbdtap_requests_in_flight") == 0)
        #expect(prom("nbdtap_upstream_connect_failures_total") == 0)
        // Replied requests are in the latency histogram (all but DISC here).
        #expect(prom("nbdtap_request_duration_seconds_count") == prom("nbdtap_requests_total") - prom("nbdtap_requests_total", ["command": "DISC"]))

        kill(prometheus.processIdentifier, SIGTERM)
        try waitForExit(prometheus)
    }

    /// The PromQL of Docs/fleet.md, read from the page itself: every query is valid for
    /// this Prometheus, and the three the page leads with give what the workload implies
    /// (one fast zero of three; READ and WRITE latencies; the READ past the end an error).
    func checkFleetQueries(_ port: Int) throws {
        let page = try String(contentsOf: repoRoot.appendingPathComponent("Docs/fleet.md"), encoding: .utf8)
        var queries: [String] = []
        for block in page.components(separatedBy: "```promql\n").dropFirst() {
            let body = block.components(separatedBy: "```")[0]
            for q in body.components(separatedBy: "\n\n") where !q.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                queries.append(q.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " "))
            }
        }
        #expect(queries.count >= 8, "\(queries)")
        for q in queries {
            let e = q.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let r = try httpExchange(port: port, ["GET /api/v1/query?query=\(e) HTTP/1.0\r\n\r\n"]).first
            #expect(r?.status == 200 && r?.body.contains(#""status":"success""#) == true, "\(q): \(r?.body.prefix(300) ?? "no reply")")
        }
        let share = try query(port, queries[0])
        #expect(share.count == 1 && share[0].1 > 0 && share[0].1 < 1, "fast=1 share: \(share)")
        let p99 = try query(port, queries[1])
        for command in ["READ", "WRITE"] {
            let v = p99.first { $0.0["command"] == command }?.1 ?? -1
            #expect(v > 0 && v <= 10, "p99 of \(command): \(p99)")
        }
        let errorRate = try query(port, queries[2])
        #expect((errorRate.first { $0.0["command"] == "READ" }?.1 ?? 0) > 0, "error rate: \(errorRate)")
        #expect(try query(port, queries[3]).contains { $0.0["errno"] == "EINVAL" && $0.0["command"] == "READ" })
    }

    /// Requests in flight come from the decoders at scrape time: four READs nbdkit's delay
    /// filter holds are four in flight, and none once they are answered.
    @Test(.enabled(if: Peers.enabled("nbdkit", "nbdsh")))
    func requestsInFlightWhileTheServerHoldsThem() throws {
        let s = try Scratch()
        let up = try s.nbdkit(["--filter=delay", "memory", "1M", "delay-read=2"], logFilter: false)
        let (px, port, sock) = try proxy(s, upstream: up, metrics: "0")
        let client = try s.start("nbdsh", ["-u", "nbd+unix:///?socket=\(sock)", "-c", """
            for i in range(4): h.aio_pread(nbd.Buffer(512), i * 512)
            while h.aio_in_flight() > 0: h.poll(-1)
            """], name: "client")
        var seen: [Double] = []
        try waitUntil("four requests in flight") {
            let v = samples(try httpGet(port: port, "/metrics")?.body ?? "")["nbdtap_requests_in_flight"] ?? -1
            seen.append(v)
            return v == 4
        }
        try waitUntil("the client to finish") { !client.isRunning }
        #expect(client.terminationStatus == 0)
        #expect(samples(try httpGet(port: port, "/metrics")?.body ?? "")["nbdtap_requests_in_flight"] == 0)
        #expect(seen.allSatisfy { (0...4).contains($0) }, "\(seen)")
        kill(px.processIdentifier, SIGTERM)
        try waitForExit(px)
    }

    @Test(.enabled(if: Peers.enabled("nbdkit", "nbdsh")))
    func endpointSpeaksTheTextFormatAndHTTP() throws {
        let s = try Scratch()
        let up = try s.nbdkit(["memory", "1M"], logFilter: false)
        let (px, port, sock) = try proxy(s, upstream: up, metrics: "0")
        let r = try s.nbdsh("nbd+unix:///?socket=\(sock)", """
            import nbd
            h = nbd.NBD()
            h.connect_uri(os.environ["uri"])
            for i in range(3): h.pwrite(b"t" * 4096, i * 4096)
            h.shutdown()
            """)
        #expect(r.status == 0, "\(r.output)")
        // The connection's close reaches the gauges just after nbdsh exits.
        var text = ""
        try waitUntil("the connection to close") {
            text = try httpGet(port: port, "/metrics")?.body ?? ""
            return samples(text)["nbdtap_connections_open"] == 0 && samples(text)["nbdtap_connections_total"] == 1
        }
        let reply = try #require(try httpGet(port: port, "/metrics"))
        #expect(reply.status == 200)
        #expect(reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        // The text format: HELP and TYPE lines, then samples `name{labels} value`.
        for line in reply.body.split(separator: "\n") {
            let ok = line.hasPrefix("# HELP nbdtap_") || line.hasPrefix("# TYPE nbdtap_")
                || line.range(of: #"^nbdtap_[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+$"#, options: .regularExpression) != nil
            #expect(ok, "\(line)")
        }
        for type in ["nbdtap_requests_total counter", "nbdtap_request_bytes_total counter", "nbdtap_write_zeroes_total counter",
                     "nbdtap_requests_in_flight gauge", "nbdtap_connections_open gauge", "nbdtap_connections_total counter",
                     "nbdtap_request_duration_seconds histogram", "nbdtap_upstream_connect_failures_total counter",
                     "nbdtap_read_bytes_total counter", "nbdtap_written_bytes_total counter"] {
            #expect(reply.body.contains("# TYPE \(type)\n"), "\(type)")
        }
        let v = samples(reply.body)
        #expect(v[#"nbdtap_requests_total{command="WRITE"}"#] == 3)
        #expect(v[#"nbdtap_request_bytes_total{command="WRITE"}"#] == Double(3 * 4096))
        #expect(v["nbdtap_written_bytes_total"] == Double(3 * 4096))
        #expect(v[#"nbdtap_request_duration_seconds_bucket{command="WRITE",le="+Inf"}"#] == 3)
        #expect(v[#"nbdtap_request_duration_seconds_count{command="WRITE"}"#] == 3)
        #expect((v[#"nbdtap_request_duration_seconds_sum{command="WRITE"}"#] ?? 0) > 0)
        #expect(v[#"nbdtap_request_duration_seconds_bucket{command="WRITE",le="0.00001"}"#] != nil)
        #expect(v[#"nbdtap_request_duration_seconds_bucket{command="WRITE",le="10.0"}"#] == 3)
        #expect(v["nbdtap_requests_in_flight"] == 0)
        // Buckets are cumulative.
        let buckets = reply.body.split(separator: "\n").filter { $0.hasPrefix(#"nbdtap_request_duration_seconds_bucket{command="WRITE""#) }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
        #expect(buckets.count == 20 && buckets == buckets.sorted(), "\(buckets)")

        // Keep-alive and pipelining on one connection: 200, 404, 405, in order.
        let three = try httpExchange(port: port, [
            "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /other HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        ])
        #expect(three.map(\.status) == [200, 404, 405])
        #expect(three.first.map { samples($0.body)["nbdtap_connections_total"] == 1 } == true)
        #expect(three.last?.headers["allow"] == "GET, HEAD")
        #expect(try httpGet(port: port, "/metrics?x=1")?.status == 200)
        // A request head past the 16 KiB bound: closed without an answer.
        let huge = try httpExchange(port: port, ["GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 40_000))\r\n\r\n"])
        #expect(huge.isEmpty)
        #expect(try httpGet(port: port, "/metrics")?.status == 200)

        // 16 connections at once: the 17th is closed unanswered, and one more is served
        // once one of the 16 has gone.
        var held: [Int32] = []
        for _ in 0..<MetricsLimits.connections { held.append(try #require(openSocket(port))) }
        try waitUntil("the 16 to be admitted") { samples(try httpGet(port: port, "/metrics")?.body ?? "").isEmpty }
        #expect(try httpGet(port: port, "/metrics") == nil)
        close(held.removeLast())
        try waitUntil("a free place") { try httpGet(port: port, "/metrics")?.status == 200 }
        for fd in held { close(fd) }

        kill(px.processIdentifier, SIGTERM)
        try waitForExit(px)
        #expect(px.terminationStatus == 0)
        // The endpoint ends with the proxy.
        #expect(!tcpConnects(port))
    }

    /// A client whose upstream cannot be reached: one connection, one connect failure, none open.
    @Test(.enabled(if: Peers.enabled("nbdsh")))
    func upstreamFailureIsCounted() throws {
        let s = try Scratch()
        let (px, port, sock) = try proxy(s, upstream: s.path("nobody.sock"), metrics: "0")
        let r = try s.nbdsh("nbd+unix:///?socket=\(sock)", """
            import nbd
            h = nbd.NBD()
            try:
                h.connect_uri(os.environ["uri"])
                raise SystemExit("connected without an upstream")
            except nbd.Error:
                pass
            """)
        #expect(r.status == 0, "\(r.output)")
        var v: [String: Double] = [:]
        try waitUntil("the connection to close") {
            v = samples(try httpGet(port: port, "/metrics")?.body ?? "")
            return v["nbdtap_connections_total"] == 1 && v["nbdtap_connections_open"] == 0
        }
        #expect(v["nbdtap_upstream_connect_failures_total"] == 1)
        #expect(v["nbdtap_requests_in_flight"] == 0)
        kill(px.processIdentifier, SIGTERM)
        try waitForExit(px)
    }

    /// The proxy's rule for `--listen`: any address the user names, 127.0.0.1 unless one is
    /// named; a bind failure is a run-time error (exit 1, no usage text). `--metrics`
    /// follows it; an address that is not PORT, HOST:PORT or [V6]:PORT is a usage error.
    @Test(.enabled(if: Peers.enabled("nbdkit")))
    func addressFollowsTheListenRule() throws {
        let s = try Scratch()
        let up = try s.nbdkit(["memory", "1M"], logFilter: false)
        for bad in ["nope", "::1:9100", "[::1", "[::1]9100", "70000", "127.0.0.1:", ":9100", "12a"] {
            let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--metrics", bad], timeout: 20)
            #expect(r.status != 0 && r.status != 1 && r.output.contains("--metrics"), "\(bad): \(r.status) \(r.output)")
        }
        // A port already taken: exit 1, before the proxy listens.
        let busy = freePort()
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        _ = withLoopback(holder, busy, bind)
        listen(holder, 1)
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--listen", "nbd+unix:///?socket=\(s.path("b.sock"))",
                                         "--metrics", "\(busy)"], timeout: 20)
        #expect(r.status == 1 && r.output.contains("cannot serve metrics on 127.0.0.1:\(busy)") && !r.output.contains("Usage:"), "\(r.output)")
        #expect(!r.output.contains("listening on"), "\(r.output)")
        // IPv6 in brackets, printed in brackets.
        let p = try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--listen", "nbd+unix:///?socket=\(s.path("v6.sock"))",
                                           "--metrics", "[::1]:0", "--quiet"], name: "v6")
        try waitUntil("the metrics line") { s.output(of: "v6").contains("listening on") || !p.isRunning }
        #expect(s.output(of: "v6").range(of: #"nbdtap: metrics on http://\[::1\]:[0-9]+/metrics"#, options: .regularExpression) != nil, "\(s.output(of: "v6"))")
        kill(p.processIdentifier, SIGTERM)
        try waitForExit(p)
    }
}
