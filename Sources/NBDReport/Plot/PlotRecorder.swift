import NBDConversation
import NIOConcurrencyHelpers

/// Gathers a `PlotModel` from the conversation decoder's events: the proxy's connections
/// (from their event loops at once, hence the lock), a capture's or a transcript's. The
/// hover text of a mark is the request's and reply's lines in nbdkit's log grammar, made
/// by the same `ConnectionLog` the log uses, and only while marks are still kept.
public final class PlotRecorder: ConversationObserver, @unchecked Sendable {
    let lock = NIOLock()
    var model = PlotModel()
    /// Log line makers for connections still open, for the hover text.
    var logs: [Int: ConnectionLog] = [:]

    public init() {}

    public func snapshot() -> PlotModel { lock.withLock { model } }

    public func observe(_ events: [ConversationEvent], connection: Int) {
        lock.withLock {
            for e in events { take(e, connection) }
        }
    }

    func take(_ e: ConversationEvent, _ connection: Int) {
        switch e.kind {
        case .transmissionStarted(let info):
            model.connected(connection, size: info.size)
        case .request(let r):
            model.request(connection, id: r.id, command: r.header.command, flags: r.header.flags,
                          offset: r.header.offset, length: r.effectLength, time: r.time, text: line(e, connection))
        case .completed(let c):
            model.completed(connection, id: c.id, time: c.replyTime, error: c.statisticsError, latency: c.statisticsLatency, text: line(e, connection))
        case .closed:
            var log = logs[connection]
            log?.append(e, to: &scratch)
            if log?.disconnectLogged ?? false { logs[connection] = nil } else if let log { logs[connection] = log }
            scratch.removeAll(keepingCapacity: true)
        case .serverGreeting, .clientFlags, .option, .optionReply, .exportNameReply, .simpleReply, .replyChunk,
             .payload, .tlsStarted, .opaque, .violation, .compliance, .gap, .skipped:
            break
        }
    }

    var scratch: [UInt8] = []

    /// The log line of a request or reply event, or "" once marks are no longer kept.
    func line(_ e: ConversationEvent, _ connection: Int) -> String {
        guard model.wantsText else {
            logs = [:]
            return ""
        }
        var log = logs[connection] ?? ConnectionLog(connection: connection, format: .nbdkit)
        scratch.removeAll(keepingCapacity: true)
        log.append(e, to: &scratch)
        logs[connection] = log
        while scratch.last == UInt8(ascii: "\n") { scratch.removeLast() }
        return String(decoding: scratch, as: UTF8.self)
    }
}

extension PlotRecorder {
    /// For sources that build the model themselves (nbdtap's JSON log).
    public func replace(_ model: PlotModel) { lock.withLock { self.model = model } }
}
