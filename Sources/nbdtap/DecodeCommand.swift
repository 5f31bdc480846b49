import ArgumentParser
import Foundation
import NBDConversation
import NBDReport
import NIOCore

struct DecodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Decode recorded NBD sessions (.nbdt transcripts) into the proxy's log and statistics."
    )

    @Argument(help: "Transcript files, one connection each, numbered in the order given.")
    var files: [String]

    @OptionGroup var report: ReportOptions

    func run() throws {
        let sink = report.log ?? "-"
        var text = ""
        var total = ConnectionStats()
        var per: [(Int, ConnectionStats)] = []
        var failed = false
        for (i, path) in files.enumerated() {
            guard let data = FileManager.default.contents(atPath: path) else {
                warn("\(path): cannot read")
                failed = true
                continue
            }
            let transcript: Transcript
            do {
                transcript = try Transcript(parsing: ByteBuffer(bytes: data))
            } catch {
                warn("\(path): not a transcript: \(error)")
                failed = true
                continue
            }
            var tap = ConversationTap(connection: i + 1, logFormat: report.logFormat)
            for r in transcript.records { tap.feed(r.direction, r.bytes, at: r.time, logText: &text) }
            tap.close(at: transcript.records.last?.time ?? 0, logText: &text)
            total.merge(tap.stats)
            per.append((i + 1, tap.stats))
        }
        if sink == "-" {
            FileHandle.standardOutput.write(Data(text.utf8))
        } else {
            FileManager.default.createFile(atPath: sink, contents: Data(text.utf8))
        }
        let stats = report.statsFormat == .json ? StatsFormatter.json(total: total, perConnection: per) + "\n"
            : StatsFormatter.text(total: total, perConnection: per)
        writeStats(stats, to: report.stats)
        if failed { throw ExitCode.failure }
    }
}
