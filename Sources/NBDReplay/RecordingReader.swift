import NBDCapture
import NBDConversation
import NBDReport
import NIOCore

/// Reads recorded sessions (pcap, pcapng, `.nbdt`, what `proxy --pcap` writes) a step at
/// a time and turns each NBD connection into workload items, through the same decoding
/// `nbdtap decode` does (`CaptureSessions`, `ConversationTap`). Streaming: it holds only
/// what the decoder and reassembler hold, plus items the caller has not taken yet.
public final class RecordingReader {
    public struct Failure: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// A recorded connection began: its number, when (capture time), whether the capture
    /// started after its handshake.
    public struct Start: Sendable {
        public var connection: Int
        public var time: UInt64
        public var midSession: Bool
    }

    let paths: [String]
    let serverPorts: Set<UInt16>
    var fileIndex = -1
    var current: Input?
    let sessions: CaptureSessions
    var extractors: [Int: WorkloadExtractor] = [:]
    /// Connections started since the last `take`, in order.
    var started: [Start] = []
    var lastNumber = 0
    /// Which recorded connections to replay, by number; nil: all but the upstream legs of
    /// `nbdtap proxy --pcap` recordings (`isProxyUpstreamLeg`).
    public var only: Set<Int>?
    /// Connections left out, with why.
    public private(set) var leftOut: [(connection: Int, reason: String)] = []
    /// Errors met so far (a damaged file ends that file, the others are still read).
    public private(set) var failures: [Failure] = []
    /// TCP connections that carried no NBD.
    public var nonNBDConnections: Int { sessions.nonNBDConnections }

    enum Input {
        case pcap(CaptureReader, String)
        case transcript(TranscriptInput)
    }

    /// A class: the tap holds the decoder's tables, which an enum payload copied out and
    /// back would duplicate on every record.
    final class TranscriptInput {
        let stream: TranscriptStream
        let path: String
        var tap: ConversationTap
        let number: Int
        var lastTime: UInt64 = 0
        var seen: [StreamDirection: UInt64] = [:]
        init(stream: TranscriptStream, path: String, number: Int) {
            self.stream = stream
            self.path = path
            self.number = number
            tap = ConversationTap(connection: number, logFormat: nil)
        }
    }

    /// Connections with new items since the last `takeItems`.
    var touched: [Int] = []
    var isTouched: Set<Int> = []

    func touch(_ n: Int) {
        if isTouched.insert(n).inserted { touched.append(n) }
    }

    public init(paths: [String], serverPorts: Set<UInt16> = [10809]) {
        self.paths = paths
        self.serverPorts = serverPorts
        sessions = CaptureSessions(logFormat: nil, serverPorts: serverPorts)
        sessions.observer = { [unowned self] in self.observe($0) }
    }

    func observe(_ o: SessionObservation) {
        switch o {
        case .started(let n, _), .fed(let n, _, _, _, _), .gap(let n, _, _, _, _), .ended(let n, _), .closed(let n, _):
            touch(n)
        }
        switch o {
        case .started(let n, let info):
            if let only, !only.contains(n) {
                leftOut.append((n, "not among --connections"))
            } else if only == nil, Self.isProxyUpstreamLeg(info) {
                leftOut.append((n, "the upstream leg of an nbdtap proxy --pcap recording (\(info.client) > \(info.server)); "
                                 + "its client leg is replayed (--connections chooses)"))
            } else {
                begin(n, time: info.time, midSession: !info.synSeen)
            }
        case .fed(let n, let d, let offset, let bytes, let events):
            extractors[n]?.fed(d, at: offset, bytes, events)
        case .gap(let n, let d, let offset, let length, let events):
            extractors[n]?.gap(d, at: offset, length: length, events)
        case .ended(let n, let events):
            extractors[n]?.ended(events)
        case .closed(let n, let time):
            extractors[n]?.closed(at: time)
        }
    }

    /// `nbdtap proxy --pcap` writes both legs of each connection; over Unix sockets the
    /// upstream leg gets the stand-in addresses 127.2.0.1 > 127.2.0.2:10809. Replaying it
    /// as well would send every request twice.
    public static func isProxyUpstreamLeg(_ info: ConnectionInfo) -> Bool {
        info.client.address == IPAddress(v4: 127, 2, 0, 1) && info.server.address == IPAddress(v4: 127, 2, 0, 2)
    }

    func begin(_ n: Int, time: UInt64, midSession: Bool) {
        lastNumber = max(lastNumber, n)
        extractors[n] = WorkloadExtractor(connection: n, midSession: midSession)
        started.append(Start(connection: n, time: time, midSession: midSession))
    }

    /// Reads a little more (one frame or record). False once every input is read.
    public func step() -> Bool {
        if current == nil {
            fileIndex += 1
            guard fileIndex < paths.count else { return false }
            let path = paths[fileIndex]
            do {
                switch try CaptureInput.open(path) {
                case .pcap(let source):
                    current = .pcap(CaptureReader(source: source, configuration: .init(serverPorts: serverPorts)), path)
                case .transcript(let stream):
                    let n = max(lastNumber, sessions.numbered.keys.max() ?? 0) + 1
                    // Begun at its first record, whose time is the connection's start.
                    lastNumber = n
                    current = .transcript(TranscriptInput(stream: stream, path: path, number: n))
                }
            } catch {
                failures.append(Failure(path: path, reason: error.reason))
            }
            return true
        }
        switch current! {
        case .pcap(let reader, let path):
            var events: [CaptureEvent] = []
            var text: [UInt8] = []
            let more = reader.step(into: &events)
            for e in events { sessions.handle(e, reader: reader.reassembler, out: &text) }
            if !more {
                if case .error(let message, let frame) = reader.status {
                    failures.append(Failure(path: path, reason: "\(message) (at frame \(frame); replayed what came before)"))
                }
                sessions.finish(out: &text)
                current = nil
            }
        case .transcript(let t):
            var text: [UInt8] = []
            var record: Transcript.Record?
            do {
                record = try t.stream.next()
            } catch {
                failures.append(Failure(path: t.path, reason: "not a transcript from byte \(t.stream.offset) on: \(error) (replayed what came before)"))
            }
            let n = t.number
            touch(n)
            if extractors[n] == nil {
                if let only, !only.contains(n) {
                    leftOut.append((n, "not among --connections"))
                    current = nil
                    return true
                }
                begin(n, time: record?.time ?? 0, midSession: false)
            }
            if let r = record {
                let offset = t.seen[r.direction, default: 0]
                t.tap.feed(r.direction, r.bytes, at: r.time, logText: &text)
                extractors[n]?.fed(r.direction, at: offset, r.bytes, t.tap.events)
                t.seen[r.direction] = offset + UInt64(r.bytes.readableBytes)
                t.lastTime = r.time
            } else {
                t.tap.close(at: t.lastTime, logText: &text)
                extractors[n]?.ended(t.tap.events)
                extractors[n]?.closed(at: t.lastTime)
                current = nil
            }
        }
        return true
    }

    /// Connections started since the last call.
    public func takeStarted() -> [Start] {
        defer { started.removeAll() }
        return started
    }

    /// The new items of every connection that has some, in the order the connections
    /// were touched; a connection that ended is then forgotten.
    public func takeItems() -> [(connection: Int, items: [WorkloadItem])] {
        var out: [(connection: Int, items: [WorkloadItem])] = []
        for n in touched {
            guard let items = extractors[n]?.items, !items.isEmpty else { continue }
            extractors[n]!.items.removeAll()
            if case .end? = items.last { extractors[n] = nil }
            out.append((n, items))
        }
        touched.removeAll(keepingCapacity: true)
        isTouched.removeAll(keepingCapacity: true)
        return out
    }
}
