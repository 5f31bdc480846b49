/// One self-contained HTML page from a `PlotModel`: inline SVG and a few lines of script,
/// nothing fetched, so it opens offline and as a mail attachment. Every mark is an SVG
/// element carrying its command (`data-cmd`, or `data-counts` for an aggregated cell) and
/// its log lines as a `<title>`: the browser shows them on hover even without script, and
/// a test can count the marks from the file alone.
public enum PlotPage {
    static let left = 84.0
    static let plotWidth = 1060.0
    static let width = left + plotWidth + 24

    public static func render(_ model: PlotModel, source: String) -> String {
        var out = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <title>nbdtap: \(PlotText.escape(source))</title>
        <style>
        body{font:13px/1.4 sans-serif;margin:16px;color:#222;background:#fff}
        h1{font-size:18px;margin:0 0 4px}h2{font-size:15px;margin:18px 0 4px}
        table{border-collapse:collapse}td,th{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}
        th:first-child,td:first-child{text-align:left}
        svg text{font:11px sans-serif;fill:#333}
        .axis{stroke:#888;stroke-width:1}.grid{stroke:#eee;stroke-width:1}
        .lane{fill:#fafafa;stroke:#ccc}
        .fua{stroke:#000;stroke-width:1}.nh{stroke:#333;stroke-dasharray:2 2;stroke-width:1}
        .mark.fz{fill:url(#fz)}.cell.fz{stroke:#004d38;stroke-width:1.5}
        .err{stroke:#e00000;stroke-width:2}
        .tick{opacity:.45}
        #info{white-space:pre;font:12px monospace;background:#f4f4f4;border:1px solid #ccc;padding:6px;min-height:2.8em;margin-top:4px}
        .swatch{display:inline-block;width:12px;height:12px;vertical-align:middle;margin:0 4px 0 10px}
        \(classStyles())
        </style></head>
        <body data-status="loading">
        <h1>nbdtap plot</h1>

        """
        out += "<p>\(PlotText.escape(source)) · \(summaryLine(model))</p>\n"
        out += summaryTable(model)
        out += "<h2>Timeline</h2>\n<p>" + legend(model) + "</p>\n"
        out += timeline(model)
        out += "<div id=\"info\">Hover a mark to see its log lines.</div>\n"
        out += "<h2>Latency</h2>\n<p>Share of replies within a latency, by command (log scale).</p>\n"
        out += latency(model)
        out += "<h2>Throughput</h2>\n<p>Bytes per second by command: each request's length (what it acts on, as the statistics count it) spread over the time to its reply.</p>\n"
        out += throughput(model)
        out += script
        out += "</body></html>\n"
        return out
    }

    static func classStyles() -> String {
        (0..<PlotClass.count).map { ".c\($0){fill:\(PlotClass.colors[$0])}span.c\($0){background:\(PlotClass.colors[$0])}.l\($0){stroke:\(PlotClass.colors[$0]);fill:none;stroke-width:1.5}" }
            .joined()
    }

    static func summaryLine(_ m: PlotModel) -> String {
        let requests = m.totals.reduce(0) { $0 + $1.requests }
        let connections = m.laneConnections.reduce(0) { $0 + $1.count }
        let span = Double(m.lastTime &- (m.firstTime ?? m.lastTime))
        var s = "\(requests) requests on \(connections)\(m.laneConnections.count > PlotModel.laneLimit ? "+" : "") connection\(connections == 1 ? "" : "s") over \(PlotText.duration(nanoseconds: span))"
        if m.aggregated { s += " · aggregated timeline (more than \(PlotModel.markLimit) requests)" }
        if m.unmatched > 0 { s += " · \(m.unmatched) requests past the limit of \(PlotModel.pendingLimit) awaiting replies: their replies are not drawn" }
        return s
    }

    static func summaryTable(_ m: PlotModel) -> String {
        var t = "<table id=\"summary\"><tr><th>command</th><th>requests</th><th>bytes</th><th>errors</th><th>fast=0</th><th>fast=1</th><th>p50</th><th>p99</th></tr>\n"
        for c in 0..<PlotClass.count where m.totals[c].requests > 0 {
            let x = m.totals[c]
            let zero = c == 6
            let p50 = x.latency.count > 0 ? PlotText.duration(nanoseconds: Double(x.latency.percentile(50))) : "-"
            let p99 = x.latency.count > 0 ? PlotText.duration(nanoseconds: Double(x.latency.percentile(99))) : "-"
            t += "<tr data-cmd=\"\(PlotClass.names[c])\"><td><span class=\"swatch c\(c)\"></span>\(PlotClass.names[c])</td><td class=\"requests\">\(x.requests)</td>"
            t += "<td>\(PlotText.bytes(Double(x.bytes)))</td><td>\(x.errors)</td><td>\(zero ? String(x.fast0) : "")</td><td>\(zero ? String(x.fast1) : "")</td><td>\(p50)</td><td>\(p99)</td></tr>\n"
        }
        return t + "</table>\n"
    }

    static func legend(_ m: PlotModel) -> String {
        var s = ""
        for c in 0..<PlotClass.count where m.totals[c].requests > 0 {
            s += "<span class=\"swatch c\(c)\"></span>\(PlotClass.names[c])"
        }
        s += " · marks: black outline FUA, hatched FAST_ZERO, dashed NO_HOLE, red outline an error; FLUSH and DISC as thin lines across the lane."
        if m.aggregated {
            s += " Each cell counts the requests that start in it, coloured by its most frequent command, darker for more."
        } else {
            s += " Each mark spans its request's offsets (up) and the time to its reply (across)."
        }
        return s
    }

    static let script = """
    <script>
    window.addEventListener('error', function (e) { document.body.setAttribute('data-status', 'error: ' + e.message); });
    (function () {
      var info = document.getElementById('info');
      document.addEventListener('mouseover', function (e) {
        var t = e.target.closest ? e.target.closest('.mark,.cell') : null;
        if (t) { var title = t.querySelector('title'); if (title) info.textContent = title.textContent; }
      });
      var marks = document.querySelectorAll('.mark').length, cells = document.querySelectorAll('.cell').length;
      document.body.setAttribute('data-status', 'ok marks=' + marks + ' cells=' + cells);
    })();
    </script>

    """
}
