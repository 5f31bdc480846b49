import ArgumentParser
import Foundation
import NBDReport

/// `--plot FILE`, shared by `proxy` and `decode`: the picture of what went by.
struct PlotOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Also write a self-contained HTML page (timeline, latency, throughput) to FILE.", valueName: "FILE"))
    var plot: String?
}

/// Writes the page; a failure to write is reported and makes the exit status non-zero.
func writePlot(_ model: PlotModel, source: String, to path: String) -> Bool {
    guard let h = openForWriting(path) else {
        warn("cannot write the plot to \(path): \(String(cString: strerror(errno)))")
        return false
    }
    h.write(Data(PlotPage.render(model, source: source).utf8))
    try? h.close()
    return true
}
