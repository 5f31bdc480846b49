import NBDConversation
import NBDReport

/// `--pcap-snaplen`: where the payloads (WRITE and READ data) lie in each direction's
/// stream, from the decoder's `.payload` events, so the legs can cut packets at payload
/// boundaries: payload bytes go in packets of their own, cut at the snapshot length, and
/// every other byte (NBD headers, the handshake) is recorded whole. Bytes whose payload
/// span the decoder has not reported (yet) are recorded whole, the safe side.
///
/// Only for the transparent relay: there both legs carry one direction's bytes at the same
/// stream offsets as the decoder saw them. One per connection, used on its event loop
/// only (the tap calls `observe` on that loop too).
final class PcapSnapCutter: ConversationObserver, @unchecked Sendable {
    /// One direction's spans not yet passed by both legs, in stream order.
    struct Spans {
        var starts: [UInt64] = []
        var ends: [UInt64] = []
        var head = 0
        /// How far each of the two legs carrying this direction has recorded: the leg it is
        /// read from (0) and the leg it is written to (1).
        var passed: (UInt64, UInt64) = (0, 0)
    }

    /// Spans kept at most per direction; past that the oldest are forgotten (their bytes
    /// are then recorded whole), so a leg that stops recording cannot grow this.
    static let limit = 65536
    var spans = [Spans(), Spans()]
    /// Whether bytes after STARTTLS (opaque TLS records, which nbdtap relays unread) are
    /// cut like payloads: with `--pcap-snaplen`, as tcpdump's `-s` cuts every packet, so a
    /// TLS session is not recorded whole in small packets. Payloads-once recording keeps
    /// them whole on both legs (nbdtap cannot tell which bytes in them are payload).
    let cutsOpaque: Bool

    init(cutsOpaque: Bool) { self.cutsOpaque = cutsOpaque }

    static func index(_ d: StreamDirection) -> Int {
        switch d {
        case .clientToServer: return 0
        case .serverToClient: return 1
        }
    }

    func observe(_ events: [ConversationEvent], connection: Int) {
        for e in events {
            switch e.kind {
            case .payload(_, let span) where span.length > 0:
                add(span)
            case .opaque(let span) where cutsOpaque && span.length > 0:
                add(span, keepingLastByte: false)
            case .serverGreeting, .clientFlags, .option, .optionReply, .exportNameReply, .transmissionStarted, .request,
                 .simpleReply, .replyChunk, .payload, .completed, .tlsStarted, .opaque, .violation, .compliance, .gap,
                 .skipped, .closed:
                break
            }
        }
    }

    /// A payload's last byte is recorded whole (`keepingLastByte`): `nbdtap decode`
    /// finishes a payload (and completes its request) on a byte it reads, not at the end
    /// of a hole, so a cut that ended exactly where the payload ends would leave a
    /// connection's last READ unfinished. Opaque bytes complete nothing.
    func add(_ span: StreamSpan, keepingLastByte: Bool = true) {
        var s = spans[Self.index(span.direction)]
        spans[Self.index(span.direction)] = Spans()  // keeps the arrays uniquely held while edited
        var start = span.offset
        if let last = s.ends.last, last > start { start = last }
        let end = span.offset + span.length - (keepingLastByte ? 1 : 0)
        if !keepingLastByte, s.ends.count > s.head, s.ends[s.ends.count - 1] == start {
            // Opaque bytes come read by read, each span where the last ended: one span.
            s.ends[s.ends.count - 1] = max(end, start)
        } else if end > start {
            s.starts.append(start)
            s.ends.append(end)
            if s.starts.count - s.head > Self.limit { s.head += 1 }
        }
        spans[Self.index(span.direction)] = s
    }

    /// Calls `body(start, length, isPayload)` for the pieces of `count` bytes at stream
    /// `offset`, `start` counted from `offset`.
    func forEachPiece(_ d: StreamDirection, offset: UInt64, count: Int, _ body: (Int, Int, Bool) -> Void) {
        let s = spans[Self.index(d)]
        let end = offset + UInt64(count)
        var pos = offset
        var i = s.head
        while pos < end {
            while i < s.ends.count && s.ends[i] <= pos { i += 1 }
            if i == s.ends.count || s.starts[i] >= end {
                body(Int(pos - offset), Int(end - pos), false)
                return
            }
            if s.starts[i] > pos {
                body(Int(pos - offset), Int(s.starts[i] - pos), false)
                pos = s.starts[i]
            }
            let stop = min(s.ends[i], end)
            body(Int(pos - offset), Int(stop - pos), true)
            pos = stop
        }
    }

    /// A leg (0: read from, 1: written to) has recorded `d` up to `offset`: spans both
    /// legs passed are dropped.
    func passed(_ d: StreamDirection, leg: Int, upTo offset: UInt64) {
        var s = spans[Self.index(d)]
        spans[Self.index(d)] = Spans()
        if leg == 0 { s.passed.0 = max(s.passed.0, offset) } else { s.passed.1 = max(s.passed.1, offset) }
        let both = min(s.passed.0, s.passed.1)
        while s.head < s.ends.count && s.ends[s.head] <= both { s.head += 1 }
        if s.head == s.ends.count {
            s.starts.removeAll(keepingCapacity: true)
            s.ends.removeAll(keepingCapacity: true)
            s.head = 0
        } else if s.head > 4096 && s.head * 2 > s.ends.count {
            s.starts.removeFirst(s.head)
            s.ends.removeFirst(s.head)
            s.head = 0
        }
        spans[Self.index(d)] = s
    }
}
