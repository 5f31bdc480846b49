#if canImport(Glibc)
import Glibc
#endif

/// The two small charts: latency as a cumulative share on a log axis, and throughput.
extension PlotPage {
    static let chartHeight = 240.0
    static let chartTop = 12.0

    static func latency(_ m: PlotModel) -> String {
        let used = (0..<PlotClass.count).filter { m.totals[$0].latency.count > 0 }
        var s = "<svg id=\"latency\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(PlotText.px(width))\" height=\"\(PlotText.px(chartHeight + 60))\">\n"
        guard !used.isEmpty else { return s + "<text x=\"\(PlotText.px(left))\" y=\"30\">no replies</text></svg>\n" }
        let lo = used.map { max(m.totals[$0].latency.min, 1) }.min()!
        let hi = used.map { max(m.totals[$0].latency.max, 1) }.max()!
        let d0 = floor(log10(Double(lo)))
        let d1 = max(ceil(log10(Double(hi))), d0 + 1)
        func x(_ ns: Double) -> Double { left + (log10(max(ns, 1)) - d0) / (d1 - d0) * plotWidth }
        func y(_ share: Double) -> Double { chartTop + (1 - share) * chartHeight }
        s += frame(yLabels: [(0, "0%"), (0.5, "50%"), (0.9, "90%"), (1, "100%")], y: y)
        var d = d0
        while d <= d1 {
            let px = x(pow(10, d))
            s += "<line class=\"grid\" x1=\"\(PlotText.px(px))\" y1=\"\(PlotText.px(chartTop))\" x2=\"\(PlotText.px(px))\" y2=\"\(PlotText.px(chartTop + chartHeight))\"/>"
            s += "<text x=\"\(PlotText.px(px))\" y=\"\(PlotText.px(chartTop + chartHeight + 14))\" text-anchor=\"middle\">\(PlotText.duration(nanoseconds: pow(10, d)))</text>\n"
            d += 1
        }
        for c in used {
            let h = m.totals[c].latency
            var seen: UInt64 = 0
            var points = "\(PlotText.px(x(Double(h.min)))),\(PlotText.px(y(0)))"
            for (i, n) in h.counts.enumerated() where n > 0 {
                seen += n
                let v = Double(min(max(LatencyHistogram.value(i), h.min), h.max))
                points += " \(PlotText.px(x(v))),\(PlotText.px(y(Double(seen) / Double(h.count))))"
            }
            s += "<polyline class=\"l\(c)\" data-cmd=\"\(PlotClass.names[c])\" points=\"\(points)\"><title>\(PlotClass.names[c]): \(h.count) replies, p50 \(PlotText.duration(nanoseconds: Double(h.percentile(50)))), p99 \(PlotText.duration(nanoseconds: Double(h.percentile(99))))</title></polyline>\n"
        }
        s += legendRow(used, y: chartTop + chartHeight + 36)
        return s + "</svg>\n"
    }

    static func throughput(_ m: PlotModel) -> String {
        var s = "<svg id=\"throughput\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(PlotText.px(width))\" height=\"\(PlotText.px(chartHeight + 60))\">\n"
        guard let series = m.throughput, series.usedBins > 0 else { return s + "<text x=\"\(PlotText.px(left))\" y=\"30\">no requests</text></svg>\n" }
        let bins = series.usedBins
        let width = Double(series.axis.width)
        let used = (0..<PlotClass.count).filter { c in (0..<bins).contains { series.values[$0 * series.series + c] > 0 } }
        var peak = 1.0
        for i in 0..<bins { for c in used { peak = max(peak, Double(series.values[i * series.series + c]) / width * 1e9) } }
        // The timeline's time axis, so the two line up.
        let span = Double(max(m.lastTime &- (m.firstTime ?? 0), 1))
        func x(_ i: Double) -> Double { left + min(i * width / span, 1) * plotWidth }
        func y(_ rate: Double) -> Double { chartTop + (1 - rate / peak) * chartHeight }
        s += frame(yLabels: [(0, "0"), (peak / 2, PlotText.bytes(peak / 2) + "/s"), (peak, PlotText.bytes(peak) + "/s")], y: y)
        for (share, label) in PlotText.timeTicks(span) {
            let px = left + share * plotWidth
            s += "<text x=\"\(PlotText.px(px))\" y=\"\(PlotText.px(chartTop + chartHeight + 14))\" text-anchor=\"middle\">\(label)</text>"
        }
        s += "\n"
        for c in used {
            var points = ""
            for i in 0..<bins {
                let rate = Double(series.values[i * series.series + c]) / width * 1e9
                points += "\(PlotText.px(x(Double(i)))),\(PlotText.px(y(rate))) \(PlotText.px(x(Double(i + 1)))),\(PlotText.px(y(rate))) "
            }
            s += "<polyline class=\"l\(c)\" data-cmd=\"\(PlotClass.names[c])\" points=\"\(points)\"/>\n"
        }
        s += legendRow(used, y: chartTop + chartHeight + 36)
        return s + "</svg>\n"
    }

    static func frame(yLabels: [(Double, String)], y: (Double) -> Double) -> String {
        var s = "<rect class=\"lane\" x=\"\(PlotText.px(left))\" y=\"\(PlotText.px(chartTop))\" width=\"\(PlotText.px(plotWidth))\" height=\"\(PlotText.px(chartHeight))\"/>\n"
        for (v, label) in yLabels {
            s += "<line class=\"grid\" x1=\"\(PlotText.px(left))\" y1=\"\(PlotText.px(y(v)))\" x2=\"\(PlotText.px(left + plotWidth))\" y2=\"\(PlotText.px(y(v)))\"/>"
            s += "<text x=\"\(PlotText.px(left - 4))\" y=\"\(PlotText.px(y(v) + 4))\" text-anchor=\"end\">\(label)</text>\n"
        }
        return s
    }

    static func legendRow(_ classes: [Int], y: Double) -> String {
        var s = ""
        var x = left
        for c in classes {
            s += "<rect class=\"c\(c)\" x=\"\(PlotText.px(x))\" y=\"\(PlotText.px(y - 9))\" width=\"12\" height=\"10\"/>"
            s += "<text x=\"\(PlotText.px(x + 16))\" y=\"\(PlotText.px(y))\">\(PlotClass.names[c])</text>"
            x += 24 + Double(PlotClass.names[c].count) * 7.5
        }
        return s + "\n"
    }
}
