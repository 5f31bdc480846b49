import NBDProtocol
import NBDReport

/// What `nbdtap replay` was asked to do.
public struct ReplayConfiguration: Sendable {
    public enum Timing: Hashable, Sendable {
        /// As fast as the server answers (and the recorded queue depth allows).
        case fast
        /// The recorded gaps between requests, and between connection starts, multiplied
        /// by the factor: 1 is the recording's own pace, 0.5 twice as fast.
        case scaled(Double)
    }

    public var upstream: NBDURI
    public var timing: Timing = .fast
    public var allowWrites = false
    /// Sent in place of WRITE data the capture lacks; nil: such writes are not sent.
    public var fill: [UInt8]?
    /// Replaces the recorded export name (the upstream URI's, when it names one).
    public var exportName: String?
    /// The replayed sessions' log, in the proxy's formats; nil for none.
    public var logFormat: LogFormat?
    /// Recorded items (bytes of WRITE data, plus a little for each request) read ahead of
    /// the replay, at most: reading the capture pauses beyond this, so memory is bounded
    /// by what is in flight, not by the capture's size.
    public var maxQueuedBytes = 16 << 20
    /// Seconds the upstream may leave the replay waiting (requests in flight or a
    /// negotiation under way, nothing received) before the connection is given up; 0:
    /// wait for ever. A server that hangs then ends in a report, not a hung replay.
    public var replyTimeout: Double = 60

    public init(upstream: NBDURI) { self.upstream = upstream }
}
