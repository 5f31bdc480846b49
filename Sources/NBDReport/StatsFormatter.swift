import NBDProtocol

/// How statistics are printed: a table for people, JSON for scripts.
public enum StatsFormat: String, Sendable, CaseIterable {
    case text
    case json
}

public enum StatsFormatter {
    static let percentiles: [(String, Double)] = [("p50", 50), ("p90", 90), ("p99", 99)]

    static func us(_ ns: UInt64) -> Double { Double(ns) / 1000 }

    /// `omitted`: connections whose own statistics were not kept (see `PerConnectionStats`);
    /// they are in the total.
    public static func json(total: ConnectionStats, perConnection: [(Int, ConnectionStats)], omitted: Int = 0) -> String {
        var o = jsonObject(total)
        if omitted > 0 { o.number("per_connection_omitted", omitted) }
        var conns: [String] = []
        for (n, s) in perConnection {
            var c = jsonObject(s)
            c.number("connection", n)
            conns.append(c.finished)
        }
        o.raw("per_connection", "[" + conns.joined(separator: ",") + "]")
        return o.finished
    }

    static func jsonObject(_ s: ConnectionStats) -> JSONObject {
        var o = JSONObject()
        o.number("connections", s.connections)
        o.number("requests", s.totalRequests)
        var commands = JSONObject()
        for (name, c) in s.commands {
            var co = JSONObject()
            co.number("requests", c.requests)
            co.number("bytes", c.bytes)
            var errors = JSONObject()
            for (k, v) in c.errors.sorted(by: { $0.key < $1.key }) { errors.number(k, v) }
            co.object("errors", errors)
            var flags = JSONObject()
            for (i, f) in CommandFlags.all.enumerated() where c.flagCounts[i] > 0 { flags.number(f.1, c.flagCounts[i]) }
            if c.unknownFlags > 0 { flags.number("UNKNOWN", c.unknownFlags) }
            co.object("flags", flags)
            if name == "WRITE_ZEROES" {
                var fast = JSONObject()
                fast.number("0", c.fast0)
                fast.number("1", c.fast1)
                co.object("fast", fast)
            }
            if c.abandoned > 0 { co.number("abandoned", c.abandoned) }
            var lat = JSONObject()
            if c.latency.count > 0 {
                lat.double("min", us(c.latency.min))
                for (k, p) in percentiles { lat.double(k, us(c.latency.percentile(p))) }
                lat.double("max", us(c.latency.max))
            }
            co.object("latency_us", lat)
            commands.object(name, co)
        }
        o.object("commands", commands)
        var v = JSONObject()
        for (k, n) in s.violations.sorted(by: { $0.key < $1.key }) { v.number(k, n) }
        o.object("violations", v)
        var cn = JSONObject()
        for (k, n) in s.compliance.sorted(by: { $0.key < $1.key }) { cn.number(k, n) }
        o.object("compliance", cn)
        o.number("bytes_client_to_server", s.bytesClientToServer)
        o.number("bytes_server_to_client", s.bytesServerToClient)
        if s.gapBytes > 0 || s.skippedBytes > 0 {
            o.number("gap_bytes", s.gapBytes)
            o.number("skipped_bytes", s.skippedBytes)
        }
        return o
    }

    public static func text(total: ConnectionStats, perConnection: [(Int, ConnectionStats)], omitted: Int = 0) -> String {
        var out = omitted > 0 ? "(\(omitted) earlier connection\(omitted == 1 ? "" : "s") counted in the total only)\n" : ""
        for (n, s) in perConnection {
            out += "connection \(n):\n" + table(s)
        }
        out += "total (\(total.connections) connection\(total.connections == 1 ? "" : "s")):\n" + table(total)
        return out
    }

    public static func table(_ s: ConnectionStats) -> String {
        let head = ["command", "requests", "bytes", "errors", "FUA", "NO_HOLE", "DF", "REQ_ONE", "FAST_ZERO", "PAYLOAD_LEN",
                    "fast=0", "fast=1", "min_us", "p50_us", "p90_us", "p99_us", "max_us"]
        var rows: [[String]] = [head]
        for (name, c) in s.commands {
            let errors = c.errors.isEmpty ? "0" : c.errors.sorted(by: { $0.key < $1.key }).map { "\($0.key):\($0.value)" }.joined(separator: ",")
            var row = [name, String(c.requests), humanBytes(c.bytes), errors]
            row += CommandFlags.all.indices.map { String(c.flagCounts[$0]) }
            row += name == "WRITE_ZEROES" ? [String(c.fast0), String(c.fast1)] : ["-", "-"]
            if c.latency.count > 0 {
                row += [fmt(us(c.latency.min))] + percentiles.map { fmt(us(c.latency.percentile($0.1))) } + [fmt(us(c.latency.max))]
            } else {
                row += ["-", "-", "-", "-", "-"]
            }
            rows.append(row)
        }
        var widths = Array(repeating: 0, count: head.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        var out = ""
        for r in rows {
            var line = "  "
            for (i, c) in r.enumerated() {
                let pad = String(repeating: " ", count: widths[i] - c.count)
                line += i == 0 ? c + pad : pad + c
                if i < r.count - 1 { line += "  " }
            }
            out += line + "\n"
        }
        if s.gapBytes > 0 || s.skippedBytes > 0 {
            out += "  capture: \(s.gapBytes) bytes missing, \(s.skippedBytes) bytes skipped to resynchronise\n"
        }
        if !s.violations.isEmpty {
            out += "  violations: " + s.violations.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "\n"
        }
        if !s.compliance.isEmpty {
            out += "  compliance notes: " + s.compliance.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "\n"
        }
        return out
    }

    static func fmt(_ v: Double) -> String {
        v >= 100 ? String(Int(v.rounded())) : String((v * 10).rounded() / 10)
    }

    public static func humanBytes(_ b: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(b)
        var i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(b) B" : String((v * 100).rounded() / 100) + " " + units[i]
    }
}
