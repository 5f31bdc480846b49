import ArgumentParser
import Dispatch
import Foundation
import NBDCapture
import NBDConversation
import NBDReport
import NIOCore

struct DecodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Decode recorded NBD sessions (pcap, pcapng, .nbdt transcripts) or a live interface into the proxy's log and statistics.",
        discussion: """
            Examples (as in the README):
              nbdtap decode f.pcap --log -
              nbdtap decode legs.pcap --stats-format json --stats stats.json
              sudo nbdtap decode --interface lo --filter 'tcp port 10809'
            """
    )

    enum View: String, ExpressibleByArgument, CaseIterable {
        case log, packets, summary
    }

    @Argument(help: "Capture files (pcap, pcapng) or .nbdt transcripts.")
    var files: [String] = []

    @OptionGroup var ports: CapturePortOptions

    @Option(name: .long, help: "log (the proxy's log formats), packets (one line per frame), or summary (statistics).")
    var view: View = .log

    @Option(name: .long, help: "Capture live from this interface until SIGINT.")
    var interface: String?

    @Option(name: .long, help: "BPF filter for --interface.")
    var filter: String?

    @OptionGroup var report: ReportOptions

    @OptionGroup var plotOption: PlotOption

    func validate() throws {
        if files.isEmpty && interface == nil { throw ValidationError("give capture files or --interface") }
        if !files.isEmpty && interface != nil { throw ValidationError("give either files or --interface, not both") }
    }


    func run() throws {
        let recorder = plotOption.plot.map { _ in PlotRecorder() }
        var failure: Error?
        do { try run(recorder: recorder) } catch { failure = error }
        // The picture of what was decoded, up to a fault too.
        if let recorder, let path = plotOption.plot,
           !writePlot(recorder.snapshot(), source: (files.isEmpty ? [interface ?? ""] : files).joined(separator: " "), to: path) {
            failure = failure ?? ExitCode.failure
        }
        if let failure { throw failure }
    }

    /// Decodes every input; `recorder` (for `--plot` and `nbdtap plot`) sees every event.
    func run(recorder: PlotRecorder?) throws {
        // The summary view prints only the statistics, unless a log file is asked for too.
        let logWanted = view != .summary || report.log != nil
        let out = try OutputFile(report.log ?? (logWanted ? "-" : "/dev/null"))
        let sessions = CaptureSessions(logFormat: logWanted ? report.logFormat : nil, serverPorts: ports.serverPorts, packetLines: view == .packets)
        sessions.eventObserver = recorder
        var failed = false
        var transcriptNumber = 0
        var transcriptStats: [(Int, ConnectionStats)] = []
        /// Frames the snapshot length cut before their TCP payload.
        var cutHeaders = 0
        if let interface {
            let source = try PcapSource(interface: interface, filter: filter)
            let reader = CaptureReader(source: source, configuration: .init(serverPorts: ports.serverPorts))
            signal(SIGINT, SIG_IGN)
            let sig = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
            sig.setEventHandler { source.breakLoop() }
            sig.resume()
            // The source must outlive the capture: Swift may release a local after its
            // last use, and SIGINT (ignored above) would then never stop the loop.
            failed = withExtendedLifetime(sig) { !decode(reader, name: interface, sessions: sessions, out: out) }
        }
        for path in files {
            let input: CaptureInput
            do {
                input = try CaptureInput.open(path)
            } catch {
                warn("\(error)")
                failed = true
                continue
            }
            switch input {
            case .transcript(let stream):
                transcriptNumber += 1
                let (stats, ok) = decodeTranscript(stream, path: path, number: transcriptNumber, out: out, observer: recorder)
                transcriptStats.append((transcriptNumber, stats))
                if !ok { failed = true }
            case .pcap(let source):
                let reader = CaptureReader(source: source, configuration: .init(serverPorts: ports.serverPorts))
                if !decode(reader, name: path, sessions: sessions, out: out) { failed = true }
                let c = reader.reassembler.counters
                cutHeaders += [SkipReason.linkHeaderTruncated, .ipHeaderTruncated, .tcpHeaderTruncated].reduce(0) { $0 + (c.skipped[$1] ?? 0) }
                // Connections a file leaves open end with it.
                var text: [UInt8] = []
                sessions.finish(out: &text)
                out.write(text)
            }
        }
        var text: [UInt8] = []
        sessions.finish(out: &text)
        out.write(text)
        out.close()
        var per = sessions.finished
        per += transcriptStats
        var total = sessions.total
        for (_, s) in transcriptStats { total.merge(s) }
        let omitted = sessions.omittedConnections
        let stats = report.statsFormat == .json ? StatsFormatter.json(total: total, perConnection: per, omitted: omitted) + "\n"
            : StatsFormatter.text(total: total, perConnection: per, omitted: omitted)
        if view == .summary {
            writeStats(stats, to: report.stats ?? "-")
        } else if let path = report.stats {
            writeStats(stats, to: path)
        }
        if sessions.nonNBDConnections > 0 {
            warn("\(sessions.nonNBDConnections) TCP connection\(sessions.nonNBDConnections == 1 ? "" : "s") without NBD ignored")
        }
        if per.isEmpty && omitted == 0 && !failed {
            if cutHeaders > 0 {
                // Nothing decodable because the capture cut every header: a broken input.
                warn("no NBD connection found: \(cutHeaders) frame\(cutHeaders == 1 ? " was" : "s were") cut before their TCP payload "
                     + "(the capture's snapshot length was too small); capture with tcpdump -s 0 (or at least -s 128)")
                failed = true
            } else {
                warn("no NBD connection found")
            }
        }
        if failed { throw ExitCode.failure }
    }

    /// Reads one capture to its end; false when the file itself is broken (after printing
    /// what was decoded up to the fault).
    func decode(_ reader: CaptureReader, name: String, sessions: CaptureSessions, out: OutputFile) -> Bool {
        var text: [UInt8] = []
        while true {
            let more = reader.step(sessions: sessions, out: &text)
            if text.count > 1 << 16 {
                out.write(text)
                text.removeAll(keepingCapacity: true)
            }
            if !more { break }
        }
        out.write(text)
        switch reader.status {
        case .endOfFile, .stopped, .reading:
            return true
        case .error(let message, let frame):
            warn("\(name): \(message) (at frame \(frame); results above are up to that frame)")
            return false
        }
    }

    /// Decodes a transcript record by record; on a damaged one prints what was decoded up
    /// to the fault, then the reason, and returns false.
    func decodeTranscript(_ stream: TranscriptStream, path: String, number: Int, out: OutputFile,
                          observer: (any ConversationObserver)?) -> (ConnectionStats, Bool) {
        var text: [UInt8] = []
        var tap = ConversationTap(connection: number, logFormat: view == .log || report.log != nil ? report.logFormat : nil)
        tap.observer = observer
        var last: UInt64 = 0
        var ok = true
        while true {
            let record: Transcript.Record?
            do {
                record = try stream.next()
            } catch {
                warn("\(path): not a transcript from byte \(stream.offset) on: \(error) (results above are up to there)")
                ok = false
                break
            }
            guard let record else { break }
            tap.feed(record.direction, record.bytes, at: record.time, logText: &text)
            last = record.time
            if text.count > 1 << 16 {
                out.write(text)
                text.removeAll(keepingCapacity: true)
            }
        }
        tap.close(at: last, logText: &text)
        out.write(text)
        return (tap.stats, ok)
    }
}

/// Standard output or a file, written in large pieces.
final class OutputFile {
    let handle: FileHandle
    init(_ path: String) throws {
        if path == "-" {
            handle = FileHandle.standardOutput
        } else {
            guard let h = openForWriting(path) else {
                throw ValidationError("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            handle = h
        }
    }
    func write(_ s: String) { if !s.isEmpty { handle.write(Data(s.utf8)) } }
    func write(_ b: [UInt8]) { if !b.isEmpty { handle.write(Data(b)) } }
    func close() { if handle !== FileHandle.standardOutput { try? handle.close() } }
}
