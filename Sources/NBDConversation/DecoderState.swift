import NBDProtocol
import NIOCore

/// Where the connection is in the protocol. Shared by both directions, since what one
/// side may send depends on what the other answered.
enum Phase: Hashable {
    /// Nothing from the server yet.
    case greeting
    /// Newstyle greeting seen; the client's flags come next.
    case clientFlags
    /// The client may send an option.
    case options
    /// The client sent this option; the server's replies come next.
    case optionReply(NBDOption)
    /// The client sent NBD_OPT_EXPORT_NAME; size and flags come next.
    case exportNameReply
    case transmission
    /// After STARTTLS was acknowledged: opaque TLS records both ways.
    case tls
    /// After NBD_OPT_ABORT was acknowledged.
    case closed
}

/// Per-direction framing state: bytes of an incomplete message, payload still to pass
/// over, and the stream offset reached.
struct DirectionState {
    /// Bytes of a message not yet complete (bounded: see `Limits`).
    var pending: ByteBuffer
    /// Payload bytes still to pass over without looking at them.
    var skip: UInt64 = 0
    /// Stream offset of the first byte of `pending` (everything before it is accounted for).
    var offset: UInt64 = 0
    /// After a fatal violation the direction can no longer be framed; bytes are only counted.
    var dead = false
    var finished = false
    /// Set once NBD_CMD_DISC was sent: the client must send nothing more.
    var disconnected = false
    /// Looking for the next message recognisable with certainty (after a capture gap, or
    /// when decoding starts mid-session) instead of framing from the previous one.
    var hunting = false
    /// Bytes passed over while hunting, reported when the next message is found.
    var huntSkipped: UInt64 = 0

    init(allocator: ByteBufferAllocator) {
        pending = allocator.buffer(capacity: 0)
    }
}

/// A request waiting for its reply, and what its reply chunks said so far.
struct InFlight {
    var event: RequestEvent
    var error: ErrorValue = .ok
    var errorMessage: String?
    var chunks = 0
    var dataBytes: UInt64 = 0
    var holeBytes: UInt64 = 0
    var extents: [ContextExtents] = []
    /// Descriptors in `extents`, against `limits.maxExtentsPerRequest`.
    var extentCount = 0

    init(event: RequestEvent) { self.event = event }

    func completed(at time: UInt64, outcome: CompletedRequest.Outcome) -> CompletedRequest {
        CompletedRequest(id: event.id, request: event.header, requestTime: event.time, replyTime: time,
                         outcome: outcome, error: error, errorMessage: errorMessage, chunks: chunks,
                         dataBytes: dataBytes, holeBytes: holeBytes, extents: extents)
    }
}

/// Bounds on what the decoder holds in memory for one connection. A message over a bound
/// is a violation, never an allocation.
public struct DecoderLimits: Sendable {
    /// Largest option or option reply data the decoder reads (spec strings are ≤ 4096 bytes).
    public var maxOptionData: Int = 1 << 20
    /// Largest reply chunk payload the decoder parses (block status: 2^20 extents of 16
    /// bytes each); larger ones are passed over as spans.
    public var maxParsedChunk: Int = (16 << 20) + 8
    /// Bytes one side may send while the decoder waits for the other side to answer.
    public var maxWaitingBytes: Int = 1 << 20
    /// Requests in flight on one connection, duplicates of a cookie included (qemu keeps
    /// 16, nbdcopy 64); one more is a fatal violation, never a bigger table.
    public var maxInFlight: Int = 65_536
    /// Block status descriptors kept for one request over all its chunks; more are counted
    /// as a violation and dropped.
    public var maxExtentsPerRequest: Int = 1 << 21

    public init() {}
}
