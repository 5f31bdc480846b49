import Foundation
import NBDProtocol
import Testing
@testable import NBDReport

/// The picture's model and page without a browser: bounded for long sessions, and every
/// request accounted for in what the page draws.
struct PlotModelTests {
    /// Requests per command as the page's SVG carries them (see PlotTests for the same
    /// reading of pages made by the command line).
    func drawn(_ html: String) -> [String: Int] {
        var counts: [String: Int] = [:]
        for m in html.matches(of: #/<rect class="mark[^"]*" data-cmd="([A-Z_0-9]+)"/#) { counts[String(m.1), default: 0] += 1 }
        for m in html.matches(of: #/<rect class="cell[^"]*" data-counts="([^"]*)"/#) {
            for pair in m.1.split(separator: " ") {
                let kv = pair.split(separator: "=")
                counts[String(kv[0]), default: 0] += Int(kv[1])!
            }
        }
        return counts
    }

    /// 250,000 requests on 12 connections over ten hours and a 1 TiB export: the model
    /// switches to cells, the page stays under 3 MB, and the cells count every request.
    @Test func aQuarterMillionRequestsStayBounded() {
        var m = PlotModel()
        var generator = SystemRandomNumberGenerator()
        let t0: UInt64 = 1_796_221_915_000_000_000
        let commands: [NBDCommand] = [.read, .write, .writeZeroes, .trim, .flush]
        var want: [String: Int] = [:]
        for i in 0..<250_000 {
            let connection = i % 12 + 1
            let command = commands[i % commands.count]
            let time = t0 + UInt64(i) * 144_000_000  // ten hours across
            let offset = UInt64.random(in: 0..<(1 << 40), using: &generator) & ~4095
            m.request(connection, id: UInt64(i), command: command, flags: i % 7 == 0 ? [.fua] : [], offset: offset,
                      length: command == .flush ? 0 : 65536, time: time, text: "request \(i)")
            m.completed(connection, id: UInt64(i), time: time + 50_000, error: i % 1000 == 0 ? "EIO" : nil, latency: 50_000, text: "reply \(i)")
            want[command.name, default: 0] += 1
        }
        #expect(m.aggregated)
        #expect(m.marks.isEmpty)
        #expect(m.laneConnections.count == PlotModel.laneLimit + 1)
        #expect(m.totals[CommandSeries.index(.read)].requests == 50_000)
        #expect(m.totals[CommandSeries.index(.read)].latency.count == 50_000)
        let page = PlotPage.render(m, source: "synthetic")
        #expect(page.utf8.count < 3_000_000, "\(page.utf8.count) bytes")
        #expect(drawn(page) == want)
        // Every error is in some cell.
        let errors = m.grid!.cells.reduce(0) { lane, cells in
            lane + stride(from: PlotGrid.errorSlot, to: cells.count, by: PlotGrid.slots).reduce(0) { $0 + Int(cells[$1]) }
        }
        #expect(errors == 250)
    }

    /// Below the limit, one mark per request, with its log lines as the hover text and
    /// its flags and error as classes.
    @Test func marksCarryTheirLinesAndFlags() {
        var m = PlotModel()
        m.connected(1, size: 1 << 30)
        m.request(1, id: 1, command: .writeZeroes, flags: [.fastZero], offset: 0, length: 32 << 20, time: 1_000, text: "Zero id=1 ...")
        m.request(1, id: 2, command: .write, flags: [.fua], offset: 1 << 20, length: 4096, time: 2_000, text: "Write id=2 ...")
        m.completed(1, id: 1, time: 5_000, error: "ENOTSUP", latency: 4_000, text: "...Zero id=1 return=-1")
        m.completed(1, id: 2, time: 6_000, error: nil, latency: 4_000, text: "...Write id=2 return=0")
        let page = PlotPage.render(m, source: "two")
        #expect(drawn(page) == ["WRITE_ZEROES": 1, "WRITE": 1])
        #expect(page.contains(#"class="mark c6 fz err" data-cmd="WRITE_ZEROES""#))
        #expect(page.contains(#"class="mark c1 fua" data-cmd="WRITE""#))
        #expect(page.contains("<title>Zero id=1 ...\n...Zero id=1 return=-1</title>"))
        #expect(m.totals[CommandSeries.index(.writeZeroes)].fast1 == 1)
        #expect(m.offsetTop == 1 << 30)
    }

    /// Hover text from a hostile log cannot break out of the SVG.
    @Test func textIsEscaped() {
        var m = PlotModel()
        m.request(1, id: 1, command: .read, flags: [], offset: 0, length: 512, time: 1, text: "</title><script>alert(1)</script>&\"")
        let page = PlotPage.render(m, source: "<x>")
        #expect(!page.contains("<script>alert"))
        #expect(page.contains("&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;"))
    }

    /// Doubling merges bins without losing a count.
    @Test func doublingKeepsSums() {
        var s = DoublingSeries(axis: DoublingAxis(bins: 8, origin: 100, width: 3), series: 2)
        #expect(s.axis.width == 4)
        for v in stride(from: UInt64(100), to: 10_000, by: 7) { s.spread(1, from: v, to: v, series: Int(v % 2)) }
        #expect(s.values.reduce(0, +) == UInt64((10_000 - 100 + 6) / 7))
        #expect(s.axis.width == 2048)  // 9,900 / 8 bins rounded up to a power of two
    }

    /// The JSON log's timestamps read back, checked against Python's datetime for the
    /// same instants.
    @Test func rfc3339ReadsBack() {
        #expect(Timestamp.parseRFC3339("2026-12-02T14:31:55.123456Z") == 1_796_221_915_123_456_000)
        #expect(Timestamp.parseRFC3339("2000-02-29T23:59:59Z") == 951_868_799_000_000_000)
        #expect(Timestamp.parseRFC3339("1970-01-02T00:00:00.000001Z") == 86_400_000_001_000)
        #expect(Timestamp.parseRFC3339("2026-13-02T14:31:55Z") == nil)
        #expect(Timestamp.parseRFC3339("yesterday") == nil)
        #expect(Timestamp.parseRFC3339(Timestamp.rfc3339(1_796_221_915_123_456_000)) == 1_796_221_915_123_456_000)
    }
}
