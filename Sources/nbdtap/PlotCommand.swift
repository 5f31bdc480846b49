import ArgumentParser
import Foundation
import NBDReport

struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Draw recorded NBD sessions as one self-contained HTML page: a timeline of requests by offset, latency and throughput.",
        discussion: """
            Reads what decode reads (pcap, pcapng, .nbdt transcripts, proxy --pcap output) and nbdtap's own JSON log (--log-format json).
            Examples (as in the README):
              nbdtap plot Captures/qemu-img-convert/session.pcap -o convert.html
              nbdtap plot proxy.json -o proxy.html
            """
    )

    @Argument(help: "Capture files, .nbdt transcripts or nbdtap JSON logs.")
    var files: [String]

    @OptionGroup var ports: CapturePortOptions

    @Option(name: [.short, .long], help: "The HTML file to write.")
    var output: String = "nbdtap-plot.html"

    func validate() throws {
        if files.isEmpty { throw ValidationError("give capture files, transcripts or JSON logs") }
    }

    func run() throws {
        var failed = false
        let recorder = PlotRecorder()
        var captures: [String] = []
        for path in files {
            if Self.isJSONLog(path) {
                // JSON logs go straight into the picture; their connection numbers are
                // their own, so several logs share lanes only where numbers agree.
                var model = recorder.snapshot()
                do { try JSONLogReader.read(path, into: &model) } catch {
                    warn("\(path): \(error) (the plot shows what came before)")
                    failed = true
                }
                recorder.replace(model)
            } else {
                captures.append(path)
            }
        }
        if !captures.isEmpty {
            var arguments = captures + ["--view", "summary", "--stats", "/dev/null"]
            for p in ports.port { arguments += ["--port", p] }
            let decode = try DecodeCommand.parse(arguments)
            do { try decode.run(recorder: recorder) } catch let e as ExitCode {
                if e != .success { failed = true }
            }
        }
        if !writePlot(recorder.snapshot(), source: files.joined(separator: " "), to: output) { failed = true }
        if failed { throw ExitCode.failure }
    }

    /// nbdtap's JSON log starts with `{`; captures and transcripts start with their magic.
    static func isJSONLog(_ path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let head = h.readData(ofLength: 64)
        return head.first(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") }) == UInt8(ascii: "{")
    }
}
