import NBDConversation
import NBDProtocol
import NBDReport
import NIOCore

/// The NBD layer of `nbdtap decode`: takes the reassembler's events, decides which TCP
/// connections carry NBD (by port, or by content on any port), and feeds each one's
/// streams to its own `ConversationTap`, the very type the proxy uses, so the log and
/// statistics of a capture are the ones the proxy would have written.
public final class CaptureSessions {
    public let logFormat: LogFormat?
    public let serverPorts: Set<UInt16>
    /// Connection ids from the reassembler, to the NBD connection number used in logs
    /// (1, 2, ... over NBD connections only).
    var sessions: [Int: Session] = [:]
    var nextNumber = 1
    /// Statistics of every finished connection merged, and the most recent ones each
    /// (bounded: a capture may hold hundreds of thousands of connections).
    public private(set) var total = ConnectionStats()
    var perConnection = PerConnectionStats()
    public var finished: [(Int, ConnectionStats)] { perConnection.kept }
    public var omittedConnections: Int { perConnection.omitted }
    public private(set) var nonNBDConnections = 0
    /// The TCP connection behind each NBD connection number, for reports and tests.
    public private(set) var numbered: [Int: ConnectionInfo] = [:]
    /// One line per frame that carried NBD bytes, for `--view packets`.
    public var packetLines: Bool
    /// Sees every NBD connection's bytes and events as they are decoded: how the replayer
    /// takes its workload from a capture without a second decoder.
    public var observer: ((SessionObservation) -> Void)?
    /// Given to every connection's tap: sees the events the log and statistics see.
    public var eventObserver: (any ConversationObserver)?

    /// A class, not a struct: the tap inside holds the decoder's tables and the
    /// statistics, which a struct copied in and out of the dictionary would duplicate
    /// (copy-on-write) on every packet.
    final class Session {
        var info: ConnectionInfo
        var tap: ConversationTap?
        /// Bytes held until content tells whether this is NBD and which side is which.
        var early: [(StreamDirection, ByteBuffer, Int, UInt64)] = []
        var earlyBytes = 0
        var decided = false
        var isNBD = false
        /// Payload spans still running per direction (for "continues" in the packets view).
        var payloadEnd: [StreamDirection: (UInt64, String)] = [:]
        var seen: [StreamDirection: UInt64] = [:]
        /// Capture time of the last bytes fed, for closing a connection the capture cut off.
        var lastTime: UInt64 = 0

        init(info: ConnectionInfo) { self.info = info }

        /// Payload bytes the decoder has ahead in `d` (see `passable`).
        func payloadAhead(_ d: StreamDirection) -> UInt64 {
            tap?.decoder.payloadAhead(d) ?? 0
        }

        /// `count` in-order stream bytes, at most `payloadAhead(d)`, went by without being
        /// copied: the tap accounts for them as if they had been fed (same events, same
        /// statistics).
        func passPayload(_ d: StreamDirection, _ count: UInt64, time: UInt64, out: inout [UInt8]) {
            lastTime = time
            seen[d, default: 0] += count
            let taken = tap?.passPayload(d, count, at: time, logText: &out)
            assert(taken == count, "\(count) bytes passed with \(taken ?? 0) of payload ahead")
        }
    }

    /// How many bytes to look at before concluding a connection on an unknown port is not NBD.
    static let sniffLimit = 64 * 1024

    public init(logFormat: LogFormat?, serverPorts: Set<UInt16> = [10809], packetLines: Bool = false) {
        self.logFormat = logFormat
        self.serverPorts = serverPorts
        self.packetLines = packetLines
    }

    public func handle(_ event: CaptureEvent, reader: TCPReassembler, out: inout [UInt8]) {
        switch event {
        case .connection(let info):
            sessions[info.id] = Session(info: info)
        case .data(let c, let d, let bytes, let frame, let time):
            guard let s = sessions[c] else { return }
            if !s.decided {
                // A copy of its own size: the frame buffer is reused for the next frame.
                var copy = ByteBufferAllocator().buffer(capacity: bytes.readableBytes)
                copy.writeImmutableBuffer(bytes)
                s.early.append((d, copy, frame, time))
                s.earlyBytes += bytes.readableBytes
                decide(s, reader: reader, final: false)
                if s.decided { replayEarly(s, out: &out) }
                return
            }
            if s.isNBD { feed(s, d, bytes, frame, time, &out) }
        case .gap(let c, let d, let length, let frame, let time):
            guard let s = sessions[c], s.decided, s.isNBD else { return }
            var events: [ConversationEvent] = []
            s.tap!.events.removeAll(keepingCapacity: true)
            s.tap!.decoder.gap(d, length: length, at: time, into: &events)
            for e in events {
                s.tap!.stats.record(e)
                s.tap!.log?.append(e, to: &out)
            }
            observer?(.gap(connection: s.tap!.connection, direction: d, streamOffset: s.seen[d, default: 0], length: length, events: events))
            s.seen[d, default: 0] += length
            if packetLines { out += "\(frame) \(Timestamp.rfc3339(time)) \(label(s, d)) [\(length) bytes missing from the capture]\n" }
        case .end(let c, let d, _, _, let time):
            guard let s = sessions[c] else { return }
            if !s.decided {
                decide(s, reader: reader, final: true)
                if s.decided { replayEarly(s, out: &out) }
            }
            if s.isNBD, !s.tap!.decoder.isFinished(d) {
                var logText: [UInt8] = []
                s.tap!.finish(d, at: time, logText: &logText)
                observer?(.ended(connection: s.tap!.connection, events: s.tap!.events))
                if !packetLines { out.append(contentsOf: logText) }
                if s.tap!.decoder.isFinished(d.other) { close(s, time, &out) }
            }
        }
    }

    /// The session of connection `connection` (the reassembler's id) when its payload may
    /// be passed over by count instead of fed (`Session.payloadAhead`, `passPayload`); nil
    /// when its bytes must be handed over as bytes: not yet known to be NBD, not NBD, or
    /// someone needs the bytes (the replayer's `observer` takes WRITE data and READ
    /// replies, the packets view counts each frame's bytes). Valid while the frame's
    /// bytes are handed on: only an `end` event closes a session.
    func passable(_ connection: Int) -> Session? {
        guard observer == nil, !packetLines, let s = sessions[connection], s.decided, s.isNBD, s.tap != nil else { return nil }
        return s
    }

    /// Ends every connection still open (the capture ended first) and forgets them all, so
    /// the next capture of the same run numbers its connections after these (each file's
    /// reassembler counts its connection ids from 1 again).
    public func finish(out: inout [UInt8]) {
        for id in sessions.keys.sorted() {
            let s = sessions[id]!
            if !s.decided {
                s.decided = true
                s.isNBD = false
                nonNBDConnections += 1
            }
            if s.isNBD, s.tap != nil { close(s, s.lastTime, &out) }
        }
        sessions.removeAll()
    }

    func close(_ s: Session, _ time: UInt64, _ out: inout [UInt8]) {
        guard var tap = s.tap else { return }
        var logText: [UInt8] = []
        tap.close(at: time, logText: &logText)
        observer?(.ended(connection: tap.connection, events: tap.events))
        observer?(.closed(connection: tap.connection, time: time))
        if !packetLines { out.append(contentsOf: logText) }
        perConnection.append(tap.connection, tap.stats)
        total.merge(tap.stats)
        s.tap = nil
        s.isNBD = false
        // Forgotten once closed: a live capture sees connections without end.
        sessions[s.info.id] = nil
    }

    /// NBD if the server port is known and content does not contradict it, or content
    /// shows NBD magics; the side sending server magics is the server.
    func decide(_ s: Session, reader: TCPReassembler, final: Bool) {
        var first: [StreamDirection: ByteBuffer] = [:]
        for (d, b, _, _) in s.early where first[d] == nil { first[d] = b }
        let c2s = first[.clientToServer] ?? ByteBuffer()
        let s2c = first[.serverToClient] ?? ByteBuffer()
        let byPort = serverPorts.contains(s.info.server.port) || serverPorts.contains(s.info.client.port)
        if let serverFirst = NBDRoleGuess.firstIsServer(s2c, c2s) {
            s.decided = true
            s.isNBD = true
            if !serverFirst, s.info.roles != .handshake || !byPort, let swapped = reader.swapRoles(connection: s.info.id) {
                // Content says the roles were guessed wrong: swap them, and the held bytes.
                s.info = swapped
                s.early = s.early.map { ($0.0.other, $0.1, $0.2, $0.3) }
            }
        } else if final || s.earlyBytes >= Self.sniffLimit || (byPort && s.info.synSeen) {
            s.decided = true
            s.isNBD = byPort
        }
        if s.decided && !s.isNBD { nonNBDConnections += 1; s.early = [] }
        if s.decided && s.isNBD {
            let number = nextNumber
            nextNumber += 1
            numbered[number] = s.info
            s.tap = ConversationTap(connection: number, logFormat: packetLines ? nil : logFormat,
                                    midSession: !s.info.synSeen)
            s.tap!.observer = eventObserver
            observer?(.started(connection: number, info: s.info))
        }
    }

    func replayEarly(_ s: Session, out: inout [UInt8]) {
        let held = s.early
        s.early = []
        guard s.isNBD else { return }
        for (d, b, f, t) in held { feed(s, d, b, f, t, &out) }
    }

    func label(_ s: Session, _ d: StreamDirection) -> String {
        let n = s.tap?.connection ?? 0
        switch d {
        case .clientToServer: return "conn=\(n) \(s.info.client) > \(s.info.server)"
        case .serverToClient: return "conn=\(n) \(s.info.server) > \(s.info.client)"
        }
    }

    func feed(_ s: Session, _ d: StreamDirection, _ bytes: ByteBuffer, _ frame: Int, _ time: UInt64, _ out: inout [UInt8]) {
        guard s.tap != nil else { return }
        s.lastTime = time
        let start = s.seen[d, default: 0]
        s.seen[d] = start + UInt64(bytes.readableBytes)
        s.tap!.feed(d, bytes, at: time, logText: &out)
        observer?(.fed(connection: s.tap!.connection, direction: d, streamOffset: start, bytes: bytes, events: s.tap!.events))
        guard packetLines else { return }
        var parts: [String] = []
        if let (end, what) = s.payloadEnd[d], start < end {
            parts.append(min(end, start + UInt64(bytes.readableBytes)) == end ? "end of \(what)" : "\(what) continues")
        }
        for e in s.tap!.events where e.direction == d {
            if let text = Self.summary(e.kind) { parts.append(text) }
            if case .payload(_, let span) = e.kind {
                let what = "payload of \(parts.last ?? "message")"
                if span.end > s.seen[d]! { s.payloadEnd[d] = (span.end, what) }
            }
        }
        for e in s.tap!.events where e.direction != d {
            if let text = Self.summary(e.kind) { parts.append(text) }
        }
        out += "\(frame) \(Timestamp.rfc3339(time)) \(label(s, d)) len=\(bytes.readableBytes) \(parts.isEmpty ? "[start of a message that ends in a later frame]" : parts.joined(separator: "; "))\n"
    }

    /// A dissector-style summary of one event, or nil for events that are not messages.
    static func summary(_ k: ConversationEvent.Kind) -> String? {
        switch k {
        case .serverGreeting(let g):
            switch g {
            case .oldstyle(let o): return "Greeting oldstyle size=\(o.size)"
            case .newstyle(let f): return "Greeting newstyle flags=\(f.names.joined(separator: "|"))"
            }
        case .clientFlags(let f): return "ClientFlags \(f.names.joined(separator: "|"))"
        case .option(let h, _): return "Option \(h.option.name)"
        case .optionReply(let h, _, _): return "OptionReply \(h.option.name) \(h.type.name)"
        case .exportNameReply(let r): return "ExportNameReply size=\(r.size)"
        case .transmissionStarted: return nil
        case .request(let r):
            let flags = r.header.flags.names
            return "Request \(r.header.command.name) id=\(r.id) cookie=0x\(String(r.header.cookie, radix: 16)) offset=\(r.header.offset) length=\(r.header.length)\(flags.isEmpty ? "" : " flags=" + flags.joined(separator: "|"))"
        case .simpleReply(let h): return "SimpleReply cookie=0x\(String(h.cookie, radix: 16)) error=\(h.error.name)"
        case .replyChunk(let h, _): return "Chunk \(h.type.name) cookie=0x\(String(h.cookie, radix: 16))\(h.isDone ? " DONE" : "")"
        case .completed(let c):
            return "(reply to id=\(c.id) \(c.request.command.name) \(c.outcome == .replied ? c.error.name : "abandoned"))"
        case .tlsStarted: return "TLS starts"
        case .opaque: return "TLS data"
        case .violation(let v): return "VIOLATION \(v.reason)"
        case .compliance(let c): return "COMPLIANCE \(c.code.rawValue)\(c.occurrence == 1 ? " " + c.reason : "")"
        case .gap(let n): return "[\(n) bytes missing]"
        case .skipped(let n): return "[\(n) bytes skipped to resynchronise]"
        case .payload, .closed: return nil
        }
    }
}
