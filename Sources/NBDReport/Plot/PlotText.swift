/// Numbers and text as the page shows them.
enum PlotText {
    /// Escaped for XML text and attribute values alike.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// Pixel coordinates with one decimal: enough for a screen, short in the file.
    static func px(_ v: Double) -> String {
        let r = (v * 10).rounded() / 10
        return r == r.rounded() ? String(Int(r)) : String(r)
    }

    static func bytes(_ v: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var x = v
        var u = 0
        while x >= 1024 && u < units.count - 1 {
            x /= 1024
            u += 1
        }
        return (x == x.rounded() ? String(Int(x)) : String((x * 10).rounded() / 10)) + " " + units[u]
    }

    static func duration(nanoseconds v: Double) -> String {
        if v == 0 { return "0" }
        if v < 1_000 { return "\(Int(v)) ns" }
        if v < 1_000_000 { return short(v / 1_000) + " µs" }
        if v < 1_000_000_000 { return short(v / 1_000_000) + " ms" }
        return short(v / 1_000_000_000) + " s"
    }

    static func short(_ v: Double) -> String {
        if v >= 100 { return String(Int(v.rounded())) }
        let r = (v * 10).rounded() / 10
        return r == r.rounded() ? String(Int(r)) : String(r)
    }

    /// Round tick steps (1, 2, 5 × 10^k) giving about `count` ticks over `span`.
    static func tickStep(_ span: Double, count: Int) -> Double {
        guard span > 0 else { return 1 }
        let raw = span / Double(count)
        var p = 1.0
        while p * 10 <= raw { p *= 10 }
        while p > raw { p /= 10 }
        for m in [1.0, 2.0, 5.0, 10.0] where p * m >= raw { return p * m }
        return p * 10
    }

    /// Ticks over a time axis of `span` nanoseconds: each tick's share of the axis (0 to
    /// 1) and its label, at round steps; the timeline and the throughput chart share them.
    static func timeTicks(_ span: Double) -> [(Double, String)] {
        let step = tickStep(span, count: 8)
        var out: [(Double, String)] = []
        var t = 0.0
        while t <= span * (1 + 1e-9) {
            out.append((t / span, duration(nanoseconds: t)))
            t += step
        }
        return out
    }
}
