import NBDProtocol

/// Which of the two byte streams of a connection.
public enum StreamDirection: Hashable, Sendable {
    case clientToServer
    case serverToClient

    public var other: StreamDirection {
        switch self {
        case .clientToServer: return .serverToClient
        case .serverToClient: return .clientToServer
        }
    }

    /// Short label for logs and the packets view.
    public var label: String {
        switch self {
        case .clientToServer: return "C>S"
        case .serverToClient: return "S>C"
        }
    }
}

/// A range of one direction's stream: payload bytes are reported this way, never copied.
public struct StreamSpan: Hashable, Sendable {
    public var direction: StreamDirection
    /// Offset of the first byte in the direction's stream (0 = the first byte ever sent).
    public var offset: UInt64
    public var length: UInt64

    public init(direction: StreamDirection, offset: UInt64, length: UInt64) {
        self.direction = direction
        self.offset = offset
        self.length = length
    }

    /// The offset just past the span, saturating: a length comes from the network (up to
    /// 2^64 - 1 under extended headers) and must not overflow whoever adds it.
    public var end: UInt64 {
        let (sum, overflow) = offset.addingReportingOverflow(length)
        return overflow ? .max : sum
    }
}

/// What the connection negotiated, as it stands when transmission starts.
public struct TransmissionInfo: Hashable, Sendable {
    public enum Style: String, Hashable, Sendable {
        case oldstyle, newstyle, fixedNewstyle = "fixed_newstyle"
    }
    public var style: Style
    public var exportName: String
    public var size: UInt64
    public var flags: TransmissionFlags
    public var structuredReplies: Bool
    public var extendedHeaders: Bool
    /// Meta contexts selected by the last NBD_OPT_SET_META_CONTEXT, by id.
    public var metaContexts: [UInt32: String]
    /// From NBD_INFO_BLOCK_SIZE, when the server sent one.
    public var blockSize: (minimum: UInt32, preferred: UInt32, maximum: UInt32)?
    /// Whether it started through NBD_OPT_GO (else EXPORT_NAME or oldstyle).
    public var viaGo: Bool
    /// Whether STARTTLS was acknowledged first (the options then decoded in plaintext: TLS
    /// terminated by a proxy such as nbdtap).
    public var tls = false

    public init(style: Style = .fixedNewstyle, exportName: String = "", size: UInt64 = 0, flags: TransmissionFlags = [],
                structuredReplies: Bool = false, extendedHeaders: Bool = false, metaContexts: [UInt32: String] = [:],
                blockSize: (minimum: UInt32, preferred: UInt32, maximum: UInt32)? = nil, viaGo: Bool = true) {
        self.style = style
        self.exportName = exportName
        self.size = size
        self.flags = flags
        self.structuredReplies = structuredReplies
        self.extendedHeaders = extendedHeaders
        self.metaContexts = metaContexts
        self.blockSize = blockSize
        self.viaGo = viaGo
    }

    public static func == (a: TransmissionInfo, b: TransmissionInfo) -> Bool {
        a.style == b.style && a.exportName == b.exportName && a.size == b.size && a.flags == b.flags
            && a.structuredReplies == b.structuredReplies && a.extendedHeaders == b.extendedHeaders
            && a.metaContexts == b.metaContexts && a.viaGo == b.viaGo && a.tls == b.tls
            && a.blockSize?.minimum == b.blockSize?.minimum && a.blockSize?.preferred == b.blockSize?.preferred
            && a.blockSize?.maximum == b.blockSize?.maximum
    }
    public func hash(into h: inout Hasher) {
        h.combine(exportName)
        h.combine(size)
        h.combine(flags)
    }
}

/// A request as the decoder saw it, with the per-connection id the log uses (1, 2, ...
/// in the order requests were sent, as nbdkit's log filter numbers them).
public struct RequestEvent: Hashable, Sendable {
    public var id: UInt64
    public var header: RequestHeader
    public var time: UInt64
    /// The length the request acts on: the header's length, except for a BLOCK_STATUS
    /// with PAYLOAD_LEN, whose header length is its payload's and whose effect length is
    /// the payload's first field.
    public var effectLength: UInt64
    /// BLOCK_STATUS with a payload: the meta context ids it asks for.
    public var contextFilter: [UInt32]?

    public init(id: UInt64, header: RequestHeader, time: UInt64, effectLength: UInt64? = nil, contextFilter: [UInt32]? = nil) {
        self.id = id
        self.header = header
        self.time = time
        self.effectLength = effectLength ?? header.length
        self.contextFilter = contextFilter
    }
}

/// Outcome of a request, emitted once its last reply arrived (or it was abandoned).
public struct CompletedRequest: Hashable, Sendable {
    public enum Outcome: Hashable, Sendable {
        /// The server answered; `error` says how.
        case replied
        /// The connection ended before the final reply.
        case abandoned
        /// NBD_CMD_DISC: the spec gives it no reply.
        case noReply
    }
    public var id: UInt64
    public var request: RequestHeader
    public var requestTime: UInt64
    public var replyTime: UInt64
    public var outcome: Outcome
    /// The first error any reply carried; `.ok` when none.
    public var error: ErrorValue
    public var errorMessage: String?
    public var chunks: Int
    /// READ data bytes returned (simple reply data or OFFSET_DATA).
    public var dataBytes: UInt64
    /// READ bytes reported as holes (OFFSET_HOLE).
    public var holeBytes: UInt64
    /// Block status: the extents per meta context, in the order the chunks came.
    public var extents: [ContextExtents]

    public var latencyNanoseconds: UInt64 { replyTime >= requestTime ? replyTime - requestTime : 0 }

    public init(id: UInt64, request: RequestHeader, requestTime: UInt64, replyTime: UInt64, outcome: Outcome, error: ErrorValue,
                errorMessage: String?, chunks: Int, dataBytes: UInt64, holeBytes: UInt64, extents: [ContextExtents]) {
        self.id = id
        self.request = request
        self.requestTime = requestTime
        self.replyTime = replyTime
        self.outcome = outcome
        self.error = error
        self.errorMessage = errorMessage
        self.chunks = chunks
        self.dataBytes = dataBytes
        self.holeBytes = holeBytes
        self.extents = extents
    }
}

/// One block status chunk's extents, with the context's name when it was negotiated.
public struct ContextExtents: Hashable, Sendable {
    public var contextID: UInt32
    public var contextName: String?
    public var descriptors: [BlockDescriptor]
}

/// Everything the decoder reports. Each event names its direction and the stream offset
/// where its message starts, so a front end can map it back to packets or buffers.
public struct ConversationEvent: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        case serverGreeting(ServerGreeting)
        case clientFlags(ClientFlags)
        case option(OptionHeader, OptionData)
        /// `final` is true for the reply that ends the option's exchange.
        case optionReply(OptionReplyHeader, OptionReplyData, final: Bool)
        case exportNameReply(ExportNameReply)
        case transmissionStarted(TransmissionInfo)
        case request(RequestEvent)
        case simpleReply(SimpleReplyHeader)
        case replyChunk(ReplyChunkHeader, ChunkPayload)
        /// Payload bytes of the message just reported (WRITE data, READ data).
        case payload(cookie: UInt64, span: StreamSpan)
        case completed(CompletedRequest)
        /// After STARTTLS was acknowledged both streams are TLS records from here on.
        case tlsStarted
        case opaque(StreamSpan)
        case violation(ProtocolViolation)
        /// A departure from the spec text that real peers make and nbdtap carries.
        case compliance(ComplianceNote)
        /// Bytes missing from a capture (dropped or truncated packets).
        case gap(missing: UInt64)
        /// Bytes passed over while looking for the next message that can be recognised
        /// with certainty (after a gap, or when decoding starts mid-session).
        case skipped(bytes: UInt64)
        /// The direction reached its end (EOF fed).
        case closed
    }

    public var direction: StreamDirection
    public var streamOffset: UInt64
    public var time: UInt64
    public var kind: Kind

    public init(direction: StreamDirection, streamOffset: UInt64, time: UInt64, kind: Kind) {
        self.direction = direction
        self.streamOffset = streamOffset
        self.time = time
        self.kind = kind
    }
}
