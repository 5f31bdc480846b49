import NBDConversation
import NBDProtocol
import NIOCore

/// One option the recorded client sent, with how the recorded server answered it.
public struct RecordedOption: Hashable, Sendable {
    public var header: OptionHeader
    public var data: OptionData
    /// The type of the reply that ended the exchange; nil when none was recorded.
    public var finalReply: OptionReplyType?
    /// Names the server returned: contexts for the META_CONTEXT options, exports for LIST.
    public var names: [String] = []

    public init(header: OptionHeader, data: OptionData) {
        self.header = header
        self.data = data
    }
}

/// What the recorded client negotiated, as far as the capture shows it.
public struct RecordedNegotiation: Hashable, Sendable {
    /// False when the capture starts after the handshake: the replay then negotiates what
    /// the requests imply (see `ReplayNegotiator`).
    public var known = true
    public var oldstyle = false
    public var clientFlags: ClientFlags = []
    public var options: [RecordedOption] = []
    /// What transmission started with; nil when the session ended in negotiation.
    public var info: TransmissionInfo?
    /// STARTTLS succeeded: the rest of the recording is TLS and cannot be replayed.
    public var tls = false
    /// Mid-session: whether the first request used extended headers.
    public var extendedRequests = false

    public init() {}
}

/// One recorded request, ready to send again.
public struct RecordedRequest: Sendable {
    /// The number of its recorded connection, as `nbdtap decode` numbers them.
    public var connection: Int
    /// Its id in the recorded connection's log.
    public var id: UInt64
    public var header: RequestHeader
    public var effectLength: UInt64
    /// BLOCK_STATUS with a payload: the contexts it asked for, by name.
    public var contextFilter: [String]?
    /// A WRITE's data as recorded, all `header.length` bytes of it; where the capture
    /// lacks bytes (`missing`) it holds zeroes.
    public var payload: ByteBuffer?
    /// Ranges of the WRITE's data the capture does not hold (a gap, the snaplen, the
    /// capture's end), from the start of the data.
    public var missing: [Range<UInt64>] = []
    public var missingBytes: UInt64 { missing.reduce(0) { $0 + UInt64($1.count) } }
    /// Requests the recorded client had in flight once this one was sent, itself included:
    /// the replay never has more.
    public var depth: Int
    public var time: UInt64

    public var isWrite: Bool {
        switch header.command {
        case .write, .writeZeroes, .trim, .resize: return true
        case .read, .disc, .flush, .cache, .blockStatus, .unknown: return false
        }
    }
}

/// How one request was answered, recorded or replayed, in the terms the two are compared.
public struct ReplyOutcome: Hashable, Sendable {
    public enum Status: Hashable, Sendable {
        case replied(ErrorValue)
        /// The connection (or the capture) ended before the final reply.
        case abandoned
        /// NBD_CMD_DISC, which has no reply.
        case noReply
    }
    public var status: Status
    /// A successful READ's data.
    public var data: DataSummary?
    /// A successful BLOCK_STATUS's extents, by context name.
    public var extents: [String: [BlockDescriptor]] = [:]

    public init(status: Status, data: DataSummary? = nil, extents: [String: [BlockDescriptor]] = [:]) {
        self.status = status
        self.data = data
        self.extents = extents
    }
}

/// A READ's data reduced to what comparing needs.
public enum DataSummary: Hashable, Sendable {
    /// All `length` bytes were seen; their digest (holes count as zeroes).
    case digest(ContentDigest)
    /// Some bytes were not seen (a gap in the capture, or chunks that overlap): the data
    /// cannot be compared, with why.
    case unknown(String)
}

/// What the extractor hands the replayer, per recorded connection, in capture order.
public enum WorkloadItem: Sendable {
    case negotiation(RecordedNegotiation)
    case request(RecordedRequest)
    case outcome(id: UInt64, ReplyOutcome)
    /// Bytes the decoder passed over (mid-session start, or after a gap) and requests it
    /// could therefore not see.
    case skipped(bytes: UInt64, direction: StreamDirection)
    /// The recorded connection ended.
    case end(time: UInt64)
}
