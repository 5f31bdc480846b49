import NBDConversation
import NBDProtocol

/// Turns one connection's events into log lines. Requests and replies follow nbdkit's log
/// filter exactly; negotiation, violations and TLS get lines of their own in the same
/// key=value style (nbdkit logs only a Connect line for all of that).
public struct ConnectionLog {
    public let connection: Int
    public let format: LogFormat
    /// Requests answered so far, as nbdkit's `Disconnect transactions=N` counts them.
    public private(set) var transactions = 0
    var closed: Set<StreamDirection> = []
    public private(set) var disconnectLogged = false
    /// Prefix of every line (` connection=N `), precomputed as bytes.
    let tag: [UInt8]
    var stamp = TimestampCache()
    /// Holes in a row, not yet logged: a payload a capture lacks comes as one hole per
    /// packet (a snapshot length, the upstream leg of a payloads-once recording), so holes
    /// with no other event between them are logged as one line, when the next event or
    /// the end comes.
    var pendingGap: PendingGap?

    struct PendingGap {
        var time: UInt64
        var direction: StreamDirection
        var bytes: UInt64
        var holes: Int
    }

    public init(connection: Int, format: LogFormat) {
        self.connection = connection
        self.format = format
        self.tag = Array(" connection=\(connection) ".utf8)
    }

    /// Appends the lines for `event` (zero or more, each ending in a newline).
    public mutating func append(_ event: ConversationEvent, to out: inout [UInt8]) {
        if case .gap(let n) = event.kind {
            if let g = pendingGap, g.direction == event.direction {
                pendingGap!.bytes &+= n
                pendingGap!.holes += 1
                return
            }
            flushGap(to: &out)
            pendingGap = PendingGap(time: event.time, direction: event.direction, bytes: n, holes: 1)
            return
        }
        flushGap(to: &out)
        switch format {
        case .nbdkit: appendText(event, to: &out)
        case .json: appendJSON(event, to: &out)
        }
        if case .completed(let c) = event.kind, c.outcome != .noReply { transactions += 1 }
        if case .closed = event.kind {
            closed.insert(event.direction)
            if closed.count == 2 { appendDisconnect(time: event.time, to: &out) }
        }
    }

    /// Logs the end of the connection once, even when a front end saw only one side close.
    public mutating func appendDisconnect(time: UInt64, to out: inout [UInt8]) {
        flushGap(to: &out)
        guard !disconnectLogged else { return }
        disconnectLogged = true
        switch format {
        case .nbdkit:
            line(time, "Disconnect transactions=\(transactions)", &out)
        case .json:
            var o = header(time, "disconnect")
            o.number("transactions", transactions)
            out += o.finished + "\n"
        }
    }

    /// Logs the holes held back, if any.
    public mutating func flushGap(to out: inout [UInt8]) {
        guard let g = pendingGap else { return }
        pendingGap = nil
        appendGap(g, to: &out)
    }

    /// One line for holes in a row: the bytes missing, and how many holes when more than one.
    mutating func appendGap(_ g: PendingGap, to out: inout [UInt8]) {
        let from = g.direction == .clientToServer ? "client" : "server"
        switch format {
        case .nbdkit:
            line(g.time, "Gap from=\(from) missing=\(g.bytes)" + (g.holes > 1 ? " holes=\(g.holes)" : ""), &out)
        case .json:
            var o = header(g.time, "gap")
            o.string("from", from)
            o.number("missing_bytes", g.bytes)
            if g.holes > 1 { o.number("holes", g.holes) }
            out += o.finished + "\n"
        }
    }

    /// A line of nbdtap's own (proxy decisions, upstream failures) in the log's format.
    public mutating func appendNote(time: UInt64, action: String, fields: [(String, String)], to out: inout [UInt8]) {
        switch format {
        case .nbdkit:
            line(time, ([action] + fields.map { "\($0.0)=\(ShellQuote.quote($0.1))" }).joined(separator: " "), &out)
        case .json:
            var o = header(time, action.lowercased())
            for (k, v) in fields { o.string(k, v) }
            out += o.finished + "\n"
        }
    }

    @inline(__always)
    mutating func line(_ time: UInt64, _ body: String, _ out: inout [UInt8]) {
        stamp.append(time, to: &out)
        out.append(contentsOf: tag)
        out += body
        out.append(UInt8(ascii: "\n"))
    }

    func header(_ time: UInt64, _ event: String) -> JSONObject {
        var o = JSONObject()
        o.string("time", Timestamp.rfc3339(time))
        o.number("connection", connection)
        o.string("event", event)
        return o
    }
}

/// Log text is gathered as UTF-8 bytes: the proxy hands them to its sink as they are, and
/// the request and reply lines are assembled byte by byte (FastText.swift). `+=` appends a
/// String's bytes, so the rarer lines are still written as interpolated Strings.
@inlinable
public func += (lhs: inout [UInt8], rhs: String) {
    lhs.append(contentsOf: rhs.utf8)
}
