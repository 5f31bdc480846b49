import NBDProtocol

/// What the chain is told about one request and its connection.
public struct RequestContext {
    public var header: RequestHeader
    /// The connection's request number (the log's `id=`).
    public var id: UInt64
    /// Transmission flags nbdtap shows the client, and those the upstream showed.
    public var shown: TransmissionFlags
    public var upstream: TransmissionFlags
    /// The upstream's NBD_INFO_BLOCK_SIZE maximum payload, when it sent one.
    public var upstreamMaxPayload: UInt32?
    public var exportSize: UInt64?
    /// Meta context ids the client selected (for answering BLOCK_STATUS itself; the relay
    /// fills them in for BLOCK_STATUS requests only).
    public var metaContexts: [UInt32]
    /// The context ids a BLOCK_STATUS payload names, when it has one.
    public var contextFilter: [UInt32]?
    /// Whether a file exists (the error rules' `file=`): given by the relay, so the chain
    /// itself does no I/O and tests can say what exists.
    public var fileExists: (String) -> Bool

    public init(header: RequestHeader, id: UInt64, shown: TransmissionFlags, upstream: TransmissionFlags,
                upstreamMaxPayload: UInt32? = nil, exportSize: UInt64? = nil, metaContexts: [UInt32] = [],
                contextFilter: [UInt32]? = nil, fileExists: @escaping (String) -> Bool = { _ in false }) {
        self.header = header
        self.id = id
        self.shown = shown
        self.upstream = upstream
        self.upstreamMaxPayload = upstreamMaxPayload
        self.exportSize = exportSize
        self.metaContexts = metaContexts
        self.contextFilter = contextFilter
        self.fileExists = fileExists
    }
}

/// What the chain decided for one request; the relay carries it out.
public struct RequestPlan: Hashable, Sendable {
    public enum Outcome: Hashable, Sendable {
        /// Send `header` upstream (the client's, or rewritten).
        case forward
        /// nbdtap replies with this error; the upstream never sees the request.
        case answer(ErrorValue, reason: String, layer: String)
        /// nbdtap replies to a BLOCK_STATUS itself: one extent per context, all data.
        case answerAllData(contexts: [UInt32], length: UInt64)
        /// WRITE_ZEROES served by these WRITEs of zeroes.
        case emulateZero(ZeroWrites)
    }

    public var header: RequestHeader
    public var outcome: Outcome
    /// Nanoseconds the request waits before the relay carries out the outcome.
    public var delay: UInt64 = 0
    /// Forwarded READs and WRITEs longer than this go upstream in pieces of at most this.
    public var maxPiece: UInt32?
    /// Drop the connection once this request has been forwarded.
    public var disconnectAfter = false

    public init(header: RequestHeader, outcome: Outcome = .forward) {
        self.header = header
        self.outcome = outcome
    }

    /// How many pieces a forwarded request goes upstream as (1: as it is).
    public var pieces: UInt64 {
        guard case .forward = outcome, let maxPiece, header.length > UInt64(maxPiece) else { return 1 }
        switch header.command {
        case .read, .write: return (header.length + UInt64(maxPiece) - 1) / UInt64(maxPiece)
        case .disc, .flush, .trim, .cache, .writeZeroes, .blockStatus, .resize, .unknown: return 1
        }
    }
}
