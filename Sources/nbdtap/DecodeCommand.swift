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
        abstract: "Decode recorded NBD sessions (pcap, pcapng, .nbdt transcripts) or a live interface into the proxy's log and statistics."
    )

    enum View: String, ExpressibleByArgument, CaseIterable {
        case log, packets, summary
    }

    @Argument(help: "Capture files (pcap, pcapng) or .nbdt transcripts.")
    var files: [String] = []

    @Option(name: .long, parsing: .upToNextOption, help: "Extra server ports to treat as NBD (10809 always is); NBD on other ports is found by content.")
    var port: [String] = []

    @Option(name: .long, help: "log (the proxy's log formats), packets (one line per frame), or summary (statistics).")
    var view: View = .log

    @Option(name: .long, help: "Capture live from this interface until SIGINT.")
    var interface: String?

    @Option(name: .long, help: "BPF filter for --interface.")
    var filter: String?

    @OptionGroup var report: ReportOptions

    func validate() throws {
        if files.isEmpty && interface == nil { throw ValidationError("give capture files or --interface") }
        if !files.isEmpty && interface != nil { throw ValidationError("give either files or --interface, not both") }
    }

    var serverPorts: Set<UInt16> {
        var ports: Set<UInt16> = [10809]
        for p in port.flatMap({ $0.split(separator: ",") }) { if let v = UInt16(p) { ports.insert(v) } }
        return ports
    }

    func run() throws {
        // The summary view prints only the statistics, unless a log file is asked for too.
        let logWanted = view != .summary || report.log != nil
        let out = try OutputFile(report.log ?? (logWanted ? "-" : "/dev/null"))
        let sessions = CaptureSessions(logFormat: logWanted ? report.logFormat : nil, serverPorts: serverPorts, packetLines: view == .packets)
        var failed = false
        var transcriptNumber = 0
        var transcriptStats: [(Int, ConnectionStats)] = []
        if let interface {
            let source = try PcapSource(interface: interface, filter: filter)
            let reader = CaptureReader(source: source, configuration: .init(serverPorts: serverPorts))
            signal(SIGINT, SIG_IGN)
            let sig = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
            sig.setEventHandler { source.breakLoop() }
            sig.resume()
            failed = !decode(reader, name: interface, sessions: sessions, out: out)
        }
        for path in files {
            guard let handle = FileHandle(forReadingAtPath: path) else {
                warn("\(path): cannot open")
                failed = true
                continue
            }
            let head = handle.readData(ofLength: 5)
            try? handle.close()
            if head == Data("NBDT".utf8 + [1]) {
                transcriptNumber += 1
                if let stats = decodeTranscript(path, number: transcriptNumber, out: out) {
                    transcriptStats.append((transcriptNumber, stats))
                } else {
                    failed = true
                }
                continue
            }
            let reader: CaptureReader
            do {
                reader = try CaptureReader(file: path, configuration: .init(serverPorts: serverPorts))
            } catch {
                warn("\(path): \(error)")
                failed = true
                continue
            }
            if !decode(reader, name: path, sessions: sessions, out: out) { failed = true }
        }
        var text: [UInt8] = []
        sessions.finish(out: &text)
        out.write(text)
        out.close()
        var per = sessions.finished.sorted { $0.0 < $1.0 }
        per += transcriptStats
        var total = ConnectionStats()
        for (_, s) in per { total.merge(s) }
        let stats = report.statsFormat == .json ? StatsFormatter.json(total: total, perConnection: per) + "\n"
            : StatsFormatter.text(total: total, perConnection: per)
        if view == .summary {
            writeStats(stats, to: report.stats ?? "-")
        } else if let path = report.stats {
            writeStats(stats, to: path)
        }
        if sessions.nonNBDConnections > 0 {
            warn("\(sessions.nonNBDConnections) TCP connection\(sessions.nonNBDConnections == 1 ? "" : "s") without NBD ignored")
        }
        if per.isEmpty && !failed { warn("no NBD connection found") }
        if failed { throw ExitCode.failure }
    }

    /// Reads one capture to its end; false when the file itself is broken (after printing
    /// what was decoded up to the fault).
    func decode(_ reader: CaptureReader, name: String, sessions: CaptureSessions, out: OutputFile) -> Bool {
        var events: [CaptureEvent] = []
        var text: [UInt8] = []
        while true {
            let more = reader.step(into: &events)
            for e in events { sessions.handle(e, reader: reader.reassembler, out: &text) }
            events.removeAll(keepingCapacity: true)
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

    func decodeTranscript(_ path: String, number: Int, out: OutputFile) -> ConnectionStats? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let transcript: Transcript
        do {
            transcript = try Transcript(parsing: ByteBuffer(bytes: data))
        } catch {
            warn("\(path): not a transcript: \(error)")
            return nil
        }
        var text: [UInt8] = []
        var tap = ConversationTap(connection: number, logFormat: view == .log || report.log != nil ? report.logFormat : nil)
        for r in transcript.records { tap.feed(r.direction, r.bytes, at: r.time, logText: &text) }
        tap.close(at: transcript.records.last?.time ?? 0, logText: &text)
        out.write(text)
        return tap.stats
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
