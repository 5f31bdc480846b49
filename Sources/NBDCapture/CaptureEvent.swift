import NBDConversation
import NIOCore

/// How the client and server of a connection were told apart.
public enum RoleSource: Hashable, Sendable {
    /// From the handshake: the SYN sender (or the SYN-ACK receiver) is the client.
    case handshake
    /// No handshake seen; one port is in the configured server-port set.
    case serverPort
    /// No handshake and no known port: provisional guess (the higher port, usually an
    /// ephemeral one, is the client). The caller should decide from content
    /// (`NBDRoleGuess`) and call `TCPReassembler.swapRoles` if the guess was wrong.
    case guessed
}

/// A TCP connection as first seen in the capture.
public struct ConnectionInfo: Hashable, Sendable {
    /// 1, 2, … in order of first sight (the SYN for complete captures), like the
    /// `session.K.nbdt` transcripts and tshark's stream numbers (plus one).
    public var id: Int
    public var client: Endpoint
    public var server: Endpoint
    /// True when the client's SYN is in the capture, so both streams start at byte 0.
    public var synSeen: Bool
    public var roles: RoleSource
    /// Frame and time of first sight.
    public var frame: Int
    public var time: UInt64

    public init(id: Int, client: Endpoint, server: Endpoint, synSeen: Bool, roles: RoleSource, frame: Int, time: UInt64) {
        self.id = id
        self.client = client
        self.server = server
        self.synSeen = synSeen
        self.roles = roles
        self.frame = frame
        self.time = time
    }
}

/// Why a direction's stream ended.
public enum EndReason: Hashable, Sendable {
    /// The sender's FIN, after all bytes before it were delivered (or declared gaps).
    case fin
    /// A RST from either side: both directions still open end with it.
    case reset
    /// More connections were open at once than the reassembler keeps
    /// (`Configuration.maxOpenConnections`): the oldest was ended to bound memory.
    case evicted
}

/// What the reassembler reports, in capture order: the conversation decoder consumes
/// `data` (and learns of holes from `gap`), reports use the rest. `time` is the capture
/// time (ns since the epoch) of the frame that made the event happen, as in `.nbdt`
/// transcripts: bytes held for a missing segment carry the time of the frame that
/// filled the hole.
public enum CaptureEvent: Sendable {
    case connection(ConnectionInfo)
    /// In-order stream bytes (a slice of the captured frame, not a copy).
    case data(connection: Int, direction: StreamDirection, bytes: ByteBuffer, frame: Int, time: UInt64)
    /// `length` bytes of the stream are not in the capture; the next data follows them.
    case gap(connection: Int, direction: StreamDirection, length: UInt64, frame: Int, time: UInt64)
    case end(connection: Int, direction: StreamDirection, reason: EndReason, frame: Int, time: UInt64)

    /// The connection the event belongs to.
    public var connection: Int {
        switch self {
        case .connection(let info): return info.id
        case .data(let c, _, _, _, _), .gap(let c, _, _, _, _), .end(let c, _, _, _, _): return c
        }
    }
}

/// Totals over a whole capture, for the summary line of `nbdtap decode`.
public struct CaptureCounters: Hashable, Sendable {
    /// Frames read.
    public var frames = 0
    /// Frames cut by the snaplen (captured length < original length).
    public var truncatedFrames = 0
    /// Frames that gave no TCP segment, by reason.
    public var skipped: [SkipReason: Int] = [:]
    /// TCP segments parsed.
    public var tcpSegments = 0
    /// Connections seen.
    public var connections = 0
    /// Connections ended early because more were kept than `maxOpenConnections`.
    public var evictedConnections = 0
    /// Segments whose bytes had all been delivered (or held) already: retransmissions,
    /// duplicates, keep-alive probes.
    public var retransmittedSegments = 0
    /// Payload bytes dropped because they were already delivered or held (whole
    /// retransmissions and the overlapping part of partial ones).
    public var retransmittedBytes = 0
    /// Segments that arrived ahead of a hole and were held until it was filled.
    public var outOfOrderSegments = 0
    /// Holes declared missing for good, and their total size.
    public var gaps = 0
    public var gapBytes: UInt64 = 0
    /// Segments ignored because their connection had already ended (after RST or FIN),
    /// or that carried data past the sender's FIN.
    public var segmentsAfterEnd = 0

    public init() {}

    public var skippedFrames: Int { skipped.values.reduce(0, +) }
}
