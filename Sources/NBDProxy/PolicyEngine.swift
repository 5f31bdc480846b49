import NBDConversation
import NBDEmulation
import NBDProtocol
import NBDReport
import NIOCore

/// The relay when a policy chain is given (`--mask`, `--delay`, `--error`, ...): it asks
/// the chain (pure values in NBDEmulation) what to do with each decoded message and
/// carries out the answer. Two conversations: the client's (the session's tap, logged)
/// and the upstream's (a second decoder fed exactly what nbdtap sends and receives).
/// Bytes nobody edits are forwarded as the slices they arrived in; an edit drops a range
/// (an option or request nbdtap answers itself, with its payload), replaces it (flags
/// masked, a cookie rewritten) or inserts bytes (a piece's header inside a WRITE's
/// payload). nbdtap's own replies enter the client's stream only between relayed
/// messages. A hold stops the client's stream at a request until a time (a delay) or a
/// condition (a split READ waiting for the upstream to be idle); a cut ends the
/// connection at a stream offset.
final class PolicyEngine {
    var chain: PolicyChain
    let options: EmulationOptions
    let maxPayloadLimit: UInt32?
    let disconnect: DisconnectLayer?
    /// Asked when a disconnect point is reached: false when `times=K` cuts are used up.
    let claimDisconnect: () -> Bool
    var upstream = ConversationDecoder()
    var fromClient = StreamWindow()
    var fromUpstream = StreamWindow()
    /// Ranges of each input stream not forwarded as they are, in stream order.
    var clientEdits: [Edit] = []
    var upstreamEdits: [Edit] = []
    /// Replies of nbdtap's own waiting for a message boundary in the client's stream
    /// (and, after a delay, for their time).
    var pendingReplies: [PendingReply] = []
    /// A request nbdtap answers itself: its payload is dropped too.
    var droppedCookies: Set<UInt64> = []
    var upstreamFlags: TransmissionFlags = []
    var shown: TransmissionFlags = []
    /// The upstream's NBD_INFO_BLOCK_SIZE maximum payload.
    var maxPayload: UInt32?
    var structured = false
    var extended = false
    /// Whether the option reply under way has shown NBD_INFO_BLOCK_SIZE yet.
    var sawBlockSize = false
    var upstreamEvents: [ConversationEvent] = []
    /// Points in the client's stream that wait, in stream order.
    var holds: [Hold] = []
    /// Stream offsets at which the connection is dropped (`--disconnect-after`).
    var clientCut: UInt64?
    var serverCut: UInt64?
    /// Requests of nbdtap's own (emulated zeroes, pieces of split requests), by cookie.
    var ownCookies: [UInt64: OwnRequest] = [:]
    /// Client requests served by several of nbdtap's, by the client's cookie.
    var aggregates: [UInt64: Aggregate] = [:]
    /// Split READs of a connection without structured replies, by the client's cookie.
    var sequentialReads: [UInt64: SequentialRead] = [:]
    var nextOwnCookie: UInt64 = 0x6e62_6474_6170_0000  // "nbdtap" in the high bytes
    /// When the relay should come back (a hold's or a reply's time), monotonic ns.
    var wakeAt: UInt64?
    /// A hold keeps at most this much of the client's stream; beyond it the client is not
    /// read (its requests then wait in its socket, and their delays start later).
    static let maxHeldBytes = 64 << 20

    struct Edit {
        var start: UInt64
        var end: UInt64
        /// Bytes sent instead of the range (none: the range is dropped).
        var replacement: [ByteBuffer] = []
    }

    struct PendingReply {
        var due: UInt64
        var bytes: ByteBuffer
        /// nbdtap's ACK to the client's STARTTLS: TLS starts on the client's channel once
        /// it is written.
        var startsTLS = false
    }

    struct Hold {
        enum Until {
            case time(UInt64)
            /// No request of the upstream's in flight: everything before it answered.
            case upstreamIdle
            /// The split READ with this client cookie answered.
            case sequentialReadDone(UInt64)
            /// The upstream answered nbdtap's own STARTTLS.
            case upstreamTLSAnswered
        }
        var offset: UInt64
        var until: Until
    }

    /// What one read (or a wake-up) turns into.
    struct Output {
        var toUpstream: [ByteBuffer] = []
        var toClient: [ByteBuffer] = []
        /// A fatal violation or a decision to hang up, with the reason.
        var close: String?
        /// Start TLS on the client's channel after writing `toClient`, on the upstream's
        /// before writing `toUpstream`.
        var startClientTLS = false
        var startUpstreamTLS = false
    }

    /// TLS termination on either side (TLSSettings).
    let tls: TLSSettings
    var clientTLSStarted = false
    enum UpstreamTLS { case none, asked, ready, plaintext }
    var upstreamTLS = UpstreamTLS.none
    /// Set when the upstream's TLS failed in the handshake: every option the client sends
    /// from then on is answered NBD_REP_ERR_SHUTDOWN with this reason.
    var refusal: String?

    init(chain: PolicyChain, tls: TLSSettings = TLSSettings(), claimDisconnect: @escaping () -> Bool = { true }) {
        self.tls = tls
        self.chain = chain
        self.options = chain.emulation
        self.maxPayloadLimit = chain.maxPayload
        self.disconnect = chain.disconnect
        self.claimDisconnect = claimDisconnect
        switch chain.disconnect?.point {
        case .clientBytes(let n): clientCut = n
        case .serverBytes(let n): serverCut = n
        case .requests, nil: break
        }
    }

    /// Whether the client side may be read: a hold keeps bytes, and must not keep them
    /// without bound.
    var mayReadClient: Bool { fromClient.count < Self.maxHeldBytes }

    /// Bytes nbdtap sends upstream, told to the upstream's conversation.
    func sendUpstream(_ buffers: [ByteBuffer], _ out: inout Output) {
        var ignored: [ConversationEvent] = []
        for b in buffers {
            upstream.feed(.clientToServer, b, at: 0, into: &ignored)
        }
        out.toUpstream += buffers
    }

    /// Bytes nbdtap sends the client, told to the client's conversation (the log).
    func sendClient(_ buffers: [ByteBuffer], _ session: ProxySession, _ out: inout Output) {
        for b in buffers {
            session.tap.feed(.serverToClient, b, at: wallClockNanoseconds(), logText: &session.logText)
            session.trackFraming(session.tap.events)
        }
        out.toClient += buffers
    }

    /// A timer fired or a condition may have changed: relays what may go now.
    func resume(session: ProxySession) -> Output {
        var out = Output()
        relayClient(session, &out)
        releaseReplies(session, &out)
        session.flushLog()
        return out
    }

    /// Forwards the window up to `decided`, applying the edits that start before it. An
    /// edit reaching past `decided` (a payload still arriving) is applied as far as it can
    /// be and kept for the rest.
    func relay(_ window: inout StreamWindow, _ edits: inout [Edit], upTo decided: UInt64) -> [ByteBuffer] {
        var out: [ByteBuffer] = []
        while window.start < decided {
            if var edit = edits.first, edit.start < decided {
                if window.start < edit.start {
                    out += window.take(upTo: edit.start)
                    continue
                }
                let stop = min(edit.end, decided)
                _ = window.take(upTo: stop)
                if !edit.replacement.isEmpty {
                    out += edit.replacement
                    edit.replacement = []
                }
                if stop >= edit.end {
                    edits.removeFirst()
                } else {
                    edit.start = stop
                    edits[0] = edit
                }
            } else {
                out += window.take(upTo: decided)
            }
        }
        // Insertions at the point reached (a piece header right where the bytes stop).
        while let edit = edits.first, edit.start == window.start, edit.end == edit.start, edit.start <= decided {
            out += edit.replacement
            edits.removeFirst()
        }
        return out
    }

    /// a + b, or the largest offset when a length from the wire (64 bits under extended
    /// headers) would pass it: such a range never ends, and must not trap.
    static func sum(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (v, overflow) = a.addingReportingOverflow(b)
        return overflow ? .max : v
    }

    /// A cookie of nbdtap's own, never one in flight from the client (forwarded, or in
    /// this same read and not yet fed to the upstream conversation) or upstream: a client
    /// may use any value, this range included.
    func ownCookie(_ client: borrowing ConversationDecoder) -> UInt64 {
        while client.isInFlight(cookie: nextOwnCookie) || upstream.isInFlight(cookie: nextOwnCookie)
            || ownCookies[nextOwnCookie] != nil || aggregates[nextOwnCookie] != nil {
            nextOwnCookie &+= 1
        }
        defer { nextOwnCookie &+= 1 }
        return nextOwnCookie
    }
}
