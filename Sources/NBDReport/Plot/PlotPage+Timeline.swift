#if canImport(Glibc)
import Glibc
#endif

/// The timeline: time across, export offset up, one lane per connection.
extension PlotPage {
    static func laneHeight(_ lanes: Int) -> Double { lanes == 1 ? 300 : lanes == 2 ? 240 : max(90, 640 / Double(lanes)) }
    static let laneGap = 30.0

    static func timeline(_ m: PlotModel) -> String {
        let lanes = max(m.laneConnections.count, 1)
        let lh = laneHeight(lanes)
        let height = Double(lanes) * (lh + laneGap) + 30
        let t0 = m.firstTime ?? 0
        let span = Double(max(m.lastTime &- t0, 1))
        let top = Double(max(m.offsetTop, 1))
        func x(_ t: UInt64) -> Double { left + Double(t &- t0) / span * plotWidth * (t >= t0 ? 1 : 0) }
        func laneTop(_ l: Int) -> Double { Double(l) * (lh + laneGap) + laneGap }
        func y(_ l: Int, _ offset: Double) -> Double { laneTop(l) + lh - min(offset / top, 1) * lh }

        var s = "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(PlotText.px(width))\" height=\"\(PlotText.px(height))\">\n"
        s += "<defs><pattern id=\"fz\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
        s += "<rect width=\"6\" height=\"6\" fill=\"\(PlotClass.colors[6])\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#fff\" stroke-width=\"2.5\"/></pattern></defs>\n"
        for l in 0..<lanes {
            let connections = l < m.laneConnections.count ? m.laneConnections[l] : []
            let label = l == PlotModel.laneLimit ? "connections \(connections.map(String.init).joined(separator: ", ")), and any later"
                : "connection \(connections.first.map(String.init) ?? "-")"
            s += "<text x=\"\(PlotText.px(left))\" y=\"\(PlotText.px(laneTop(l) - 6))\">\(label)</text>\n"
            s += "<rect class=\"lane\" x=\"\(PlotText.px(left))\" y=\"\(PlotText.px(laneTop(l)))\" width=\"\(PlotText.px(plotWidth))\" height=\"\(PlotText.px(lh))\"/>\n"
            for f in [0.0, 0.5, 1.0] {
                s += "<text x=\"\(PlotText.px(left - 4))\" y=\"\(PlotText.px(y(l, top * f) + 4))\" text-anchor=\"end\">\(PlotText.bytes(top * f))</text>\n"
            }
        }
        // Time ticks under the last lane.
        let axisY = laneTop(lanes - 1) + lh
        for (share, label) in PlotText.timeTicks(span) {
            let px = left + share * plotWidth
            s += "<line class=\"grid\" x1=\"\(PlotText.px(px))\" y1=\"\(PlotText.px(laneGap))\" x2=\"\(PlotText.px(px))\" y2=\"\(PlotText.px(axisY))\"/>"
            s += "<text x=\"\(PlotText.px(px))\" y=\"\(PlotText.px(axisY + 14))\" text-anchor=\"middle\">\(label)</text>\n"
        }
        if let grid = m.grid {
            s += cells(grid, m, lh: lh, x: x, y: y)
        } else {
            for mark in m.marks {
                let x0 = x(mark.start)
                // A command without a range (FLUSH, DISC) is a line at its start; its
                // duration is in the hover text.
                let x1 = mark.length == 0 ? x0 : x(mark.end ?? m.lastTime)
                var cls = "mark c\(mark.command)"
                if mark.flags.contains(.fua) { cls += " fua" }
                if mark.flags.contains(.noHole) { cls += " nh" }
                if mark.flags.contains(.fastZero) && mark.command == 6 { cls += " fz" }
                if mark.error != nil { cls += " err" }
                let y0: Double
                let h: Double
                if mark.length == 0 {
                    cls += " tick"
                    y0 = laneTop(mark.lane)
                    h = lh
                } else {
                    let (end, overflow) = mark.offset.addingReportingOverflow(mark.length)
                    let yTop = y(mark.lane, Double(overflow ? .max : end))
                    let yBottom = y(mark.lane, Double(mark.offset))
                    h = max(yBottom - yTop, 1.5)
                    y0 = min(yTop, yBottom - 1.5)
                }
                s += "<rect class=\"\(cls)\" data-cmd=\"\(PlotClass.names[mark.command])\" x=\"\(PlotText.px(x0))\" y=\"\(PlotText.px(y0))\" "
                s += "width=\"\(PlotText.px(max(x1 - x0, mark.length == 0 ? 2 : 3)))\" height=\"\(PlotText.px(h))\"><title>\(PlotText.escape(mark.text))</title></rect>\n"
            }
        }
        return s + "</svg>\n"
    }

    /// Cells drawn at most: past it, time bins merge pairwise until the page fits (about
    /// 250 bytes a cell, so some 2 MB at worst).
    static let cellBudget = 8_000

    static func cells(_ grid: PlotGrid, _ m: PlotModel, lh: Double, x: (UInt64) -> Double, y: (Int, Double) -> Double) -> String {
        var g = grid
        while g.occupiedCells > cellBudget && g.time.width < 1 << 62 { g.doubleTime() }
        var s = ""
        var most: UInt32 = 1
        for lane in g.cells where !lane.isEmpty {
            for c in stride(from: 0, to: lane.count, by: PlotGrid.slots) {
                most = max(most, lane[c..<c + PlotClass.count].reduce(0, +))
            }
        }
        let t0 = g.time.origin
        let tw = g.time.width
        let ow = Double(g.offset.width)
        for (l, lane) in g.cells.enumerated() where !lane.isEmpty {
            for ti in 0..<PlotGrid.timeBins {
                for oi in 0..<PlotGrid.offsetBins {
                    let base = (ti * PlotGrid.offsetBins + oi) * PlotGrid.slots
                    let counts = lane[base..<base + PlotClass.count]
                    let n = counts.reduce(0, +)
                    guard n > 0 else { continue }
                    var dominant = 0
                    for c in 0..<PlotClass.count where counts[base + c] > counts[base + dominant] { dominant = c }
                    let present = (0..<PlotClass.count).filter { counts[base + $0] > 0 }
                    let errors = lane[base + PlotGrid.errorSlot]
                    let fua = lane[base + PlotGrid.fuaSlot]
                    let fast = lane[base + PlotGrid.fastZeroSlot]
                    let noHole = lane[base + PlotGrid.noHoleSlot]
                    var cls = "cell c\(dominant)"
                    if errors > 0 { cls += " err" } else if fast > 0 { cls += " fz" }
                    let start = t0 &+ UInt64(ti) &* tw
                    let x0 = x(start)
                    let x1 = x(start &+ tw)
                    let yTop = y(l, Double(oi + 1) * ow)
                    let yBottom = y(l, Double(oi) * ow)
                    let opacity = 0.3 + 0.7 * log2(Double(n) + 1) / log2(Double(most) + 1)
                    let countsText = present.map { "\(PlotClass.names[$0])=\(counts[base + $0])" }.joined(separator: " ")
                    let from = Double(start &- (m.firstTime ?? t0))
                    var title = "\(PlotText.duration(nanoseconds: from))–\(PlotText.duration(nanoseconds: from + Double(tw))), "
                    title += "\(PlotText.bytes(Double(oi) * ow))–\(PlotText.bytes(Double(oi + 1) * ow)): "
                    title += present.map { "\(PlotClass.names[$0]) \(counts[base + $0])" }.joined(separator: ", ")
                    for (name, n) in [("errors", errors), ("FUA", fua), ("FAST_ZERO", fast), ("NO_HOLE", noHole)] where n > 0 { title += "; \(name) \(n)" }
                    s += "<rect class=\"\(cls)\" data-counts=\"\(countsText)\" x=\"\(PlotText.px(x0))\" y=\"\(PlotText.px(min(yTop, yBottom - 1.5)))\" "
                    s += "width=\"\(PlotText.px(max(x1 - x0, 1.5)))\" height=\"\(PlotText.px(max(yBottom - yTop, 1.5)))\" fill-opacity=\"\(PlotText.short(opacity))\"><title>\(title)</title></rect>\n"
                }
            }
        }
        return s
    }
}
