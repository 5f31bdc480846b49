import NBDConversation
import NBDProtocol
import NIOCore

/// One connection as the proxy and the pcap decoder both see it: the conversation
/// decoder, its log and its statistics, fed from whichever front end. Sharing this is what
/// makes live and offline output agree.
public struct ConversationTap {
    public let connection: Int
    public var decoder: ConversationDecoder
    public var log: ConnectionLog?
    public var stats = ConnectionStats()
    /// Events of the last feed, reused between calls so steady state does not allocate.
    public var events: [ConversationEvent] = []
    /// Sees every event after the statistics and the log (the picture, live metrics).
    public var observer: (any ConversationObserver)?

    public init(connection: Int, logFormat: LogFormat?, limits: DecoderLimits = DecoderLimits(), midSession: Bool = false) {
        self.connection = connection
        self.decoder = ConversationDecoder(limits: limits, midSession: midSession)
        self.log = logFormat.map { ConnectionLog(connection: connection, format: $0) }
        stats.connections = 1
    }

    /// Feeds bytes and appends the resulting log lines to `logText`; the events stay in
    /// `events` until the next call.
    public mutating func feed(_ d: StreamDirection, _ bytes: ByteBuffer, at time: UInt64, logText: inout [UInt8]) {
        events.removeAll(keepingCapacity: true)
        switch d {
        case .clientToServer: stats.bytesClientToServer &+= UInt64(bytes.readableBytes)
        case .serverToClient: stats.bytesServerToClient &+= UInt64(bytes.readableBytes)
        }
        decoder.feed(d, bytes, at: time, into: &events)
        consume(&logText)
    }

    /// Payload bytes that went by without being fed (see `ConversationDecoder.passPayload`):
    /// counted in the byte totals as fed bytes are, so the statistics do not depend on
    /// which path moved them.
    @discardableResult
    public mutating func passPayload(_ d: StreamDirection, _ count: UInt64, at time: UInt64, logText: inout [UInt8]) -> UInt64 {
        events.removeAll(keepingCapacity: true)
        let n = decoder.passPayload(d, count, at: time, into: &events)
        switch d {
        case .clientToServer: stats.bytesClientToServer &+= n
        case .serverToClient: stats.bytesServerToClient &+= n
        }
        consume(&logText)
        return n
    }

    public mutating func finish(_ d: StreamDirection, at time: UInt64, logText: inout [UInt8], cutByRelay: Bool = false) {
        events.removeAll(keepingCapacity: true)
        decoder.finish(d, at: time, into: &events, cutByRelay: cutByRelay)
        consume(&logText)
    }

    /// Ends the connection for the log even if one side never closed. `events` then holds
    /// the events of both directions' ends.
    public mutating func close(at time: UInt64, logText: inout [UInt8]) {
        events.removeAll(keepingCapacity: true)
        decoder.finish(.clientToServer, at: time, into: &events)
        decoder.finish(.serverToClient, at: time, into: &events)
        consume(&logText)
        log?.appendDisconnect(time: time, to: &logText)
    }

    mutating func consume(_ logText: inout [UInt8]) {
        for e in events {
            stats.record(e)
            log?.append(e, to: &logText)
        }
        if let observer, !events.isEmpty { observer.observe(events, connection: connection) }
    }
}
