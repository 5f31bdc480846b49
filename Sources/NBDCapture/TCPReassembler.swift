import NBDConversation
import NIOCore

/// Rebuilds the two byte streams of every TCP connection in a capture, in sequence
/// order, and reports them as `CaptureEvent`s in capture order.
///
/// Why it is built this way:
/// - Sequence numbers are mapped to 64-bit stream offsets (0 = first byte after the
///   SYN, or the first byte seen) by unwrapping each 32-bit number near the current
///   position, so wraparound needs no special case.
/// - Segments ahead of a hole are held (a sorted list of payload slices) up to
///   `maxHeldBytesPerDirection`; a capture that dropped a frame cannot be fixed by
///   waiting, so past that bound, when the sender's FIN has been acknowledged by the
///   peer (it received everything), on RST, or at `finish()`, the hole is declared a
///   gap and delivery continues after it. Bytes the IP header promised but the snaplen
///   cut are known lost at once.
/// - Retransmitted and overlapping bytes are trimmed against what was delivered or is
///   held, so the streams equal what the receiving application read.
/// - Orientation comes from the handshake, else from the server-port set, else a guess
///   the caller can correct (`swapRoles`) from content (`NBDRoleGuess`).
public final class TCPReassembler {
    public struct Configuration: Sendable {
        /// Ports that identify the server of a connection whose handshake was not captured.
        public var serverPorts: Set<UInt16>
        /// Bytes held ahead of a hole per direction before the hole is declared a gap.
        public var maxHeldBytesPerDirection: Int
        /// Segments held per direction before the hole is declared a gap: bounds the
        /// bookkeeping (and the frames kept alive) when the held segments are tiny.
        public var maxHeldSegmentsPerDirection: Int

        /// Connections kept at once (open, or closed and remembered for their 4-tuple);
        /// past it the oldest is ended (`EndReason.evicted`), so a capture or a live
        /// interface with endless unclosed connections decodes in bounded memory.
        public var maxOpenConnections: Int

        public init(serverPorts: Set<UInt16> = [10809], maxHeldBytesPerDirection: Int = 8 << 20,
                    maxHeldSegmentsPerDirection: Int = 16_384, maxOpenConnections: Int = 10_000) {
            self.serverPorts = serverPorts
            self.maxHeldBytesPerDirection = maxHeldBytesPerDirection
            self.maxHeldSegmentsPerDirection = maxHeldSegmentsPerDirection
            self.maxOpenConnections = maxOpenConnections
        }
    }

    public let configuration: Configuration
    public internal(set) var counters = CaptureCounters()
    private var active: [FlowKey: Connection] = [:]
    /// 4-tuples in the order their connections started, for evicting the oldest (entries
    /// whose connection left `active` are skipped when reached).
    private var startOrder: [(FlowKey, Int)] = []
    private var startOrderHead = 0
    /// Connections still kept, by id; `history` has every connection's info, compact.
    private var connections: [Int: Connection] = [:]
    private var history: [ConnectionInfo] = []

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// The connection with this id (1-based), as it stands now (roles may have been swapped).
    public func connection(_ id: Int) -> ConnectionInfo? {
        connections[id]?.info ?? (id >= 1 && id <= history.count ? history[id - 1] : nil)
    }

    /// All connections seen so far, by id.
    public var allConnections: [ConnectionInfo] { history }

    /// Exchange client and server of a connection whose roles were guessed wrong. Later
    /// events use the new orientation; events already emitted keep the old one (flip
    /// their `direction` with `.other`). Returns the updated info.
    @discardableResult
    public func swapRoles(connection id: Int) -> ConnectionInfo? {
        guard let c = connections[id] else { return nil }
        let old = c.info
        c.info.client = old.server
        c.info.server = old.client
        history[id - 1] = c.info
        return c.info
    }

    /// Parse one captured frame and feed its TCP segment, if any. Counts frames,
    /// snaplen-truncated frames and skipped frames by reason.
    public func process(_ packet: Packet, linkType: LinkType, into events: inout [CaptureEvent]) {
        countFrame(isTruncated: packet.isTruncated)
        switch FrameParser.parse(packet.bytes, linkType: linkType) {
        case .skipped(let reason):
            countSkipped(reason)
        case .tcp(let segment):
            process(segment, frame: packet.frameNumber, time: packet.timestamp, into: &events)
        }
    }

    /// Counts a frame parsed by the caller (the in-place reader), as `process(_:linkType:into:)` does.
    func countFrame(isTruncated: Bool) {
        counters.frames += 1
        if isTruncated { counters.truncatedFrames += 1 }
    }

    func countSkipped(_ reason: SkipReason) {
        counters.skipped[reason, default: 0] += 1
    }

    /// Feed one TCP segment (frame number and capture time are passed through to events).
    public func process(_ seg: TCPSegment, frame: Int, time: UInt64, into events: inout [CaptureEvent]) {
        counters.tcpSegments += 1
        let now = Stamp(frame: frame, time: time)
        let key = FlowKey(seg.source, seg.destination)
        let synOnly = seg.flags.contains(.syn) && !seg.flags.contains(.ack)
        let synAck = seg.flags.contains(.syn) && seg.flags.contains(.ack)
        var conn = active[key]

        if let c = conn {
            if synOnly {
                let sameSYN = c.clientISN == seg.sequenceNumber && c.info.client == seg.source
                if sameSYN && !c.isClosed {
                    counters.retransmittedSegments += 1
                    return
                }
                // Port reuse: a new SYN after the old connection ended, or a different ISN.
                retire(c, now, &events)
                conn = nil
            } else if synAck, c.isClosed || (c.serverISN != nil && c.serverISN != seg.sequenceNumber) {
                // A SYN-ACK for a connection whose SYN was not captured, on a reused 4-tuple.
                retire(c, now, &events)
                conn = nil
            }
        }

        let c: Connection
        if let existing = conn {
            c = existing
        } else {
            // Pure ACKs, RSTs and window probes do not start a connection: a connection
            // seen mid-way starts with its first data (or FIN).
            guard seg.flags.contains(.syn) || seg.payload.readableBytes > 0 || seg.missingPayloadBytes > 0
                    || seg.flags.contains(.fin) else { return }
            let client: Endpoint, server: Endpoint, roles: RoleSource
            if synOnly {
                (client, server, roles) = (seg.source, seg.destination, .handshake)
            } else if synAck {
                (client, server, roles) = (seg.destination, seg.source, .handshake)
            } else if configuration.serverPorts.contains(seg.destination.port) && !configuration.serverPorts.contains(seg.source.port) {
                (client, server, roles) = (seg.source, seg.destination, .serverPort)
            } else if configuration.serverPorts.contains(seg.source.port) && !configuration.serverPorts.contains(seg.destination.port) {
                (client, server, roles) = (seg.destination, seg.source, .serverPort)
            } else if seg.source.port < seg.destination.port {
                (client, server, roles) = (seg.destination, seg.source, .guessed)
            } else {
                (client, server, roles) = (seg.source, seg.destination, .guessed)
            }
            let info = ConnectionInfo(id: history.count + 1, client: client, server: server,
                                      synSeen: synOnly, roles: roles, frame: frame, time: time)
            c = Connection(info: info)
            connections[info.id] = c
            history.append(info)
            active[key] = c
            startOrder.append((key, info.id))
            counters.connections += 1
            events.append(.connection(info))
            if active.count > configuration.maxOpenConnections { evictOldest(now, &events) }
        }

        let sender = c.state(of: seg.source)
        let receiver = c.state(of: seg.destination)
        let direction: StreamDirection = seg.source == c.info.client ? .clientToServer : .serverToClient
        var seq = seg.sequenceNumber
        if seg.flags.contains(.syn) {
            if synOnly {
                c.clientISN = seg.sequenceNumber
            } else {
                c.serverISN = seg.sequenceNumber
                c.handshakeSeen = true
            }
            if synOnly { c.handshakeSeen = true }
            if sender.base == nil { sender.base = seq &+ 1 }
            seq &+= 1  // data on a SYN (TCP Fast Open) follows it
        }
        // With the handshake seen, the first ACK from one side gives the other side's
        // initial sequence number even if its SYN(-ACK) was not captured.
        if seg.flags.contains(.ack), c.handshakeSeen, receiver.base == nil {
            receiver.base = seg.acknowledgmentNumber
        }

        let hasData = seg.payload.readableBytes > 0 || seg.missingPayloadBytes > 0
        if sender.base == nil, hasData || seg.flags.contains(.fin) {
            sender.base = seq  // capture started mid-connection: stream starts here
        }

        if hasData || seg.flags.contains(.fin) {
            // Data that acknowledges bytes of the other direction was sent after the peer
            // had them: a reply can only follow its request. If those bytes have not been
            // delivered yet (a hole, or a segment the capture recorded late), this data
            // waits for them, so the conversation decoder sees the request side first.
            var acked: Int64?
            if hasData, seg.flags.contains(.ack), let base = receiver.base, !receiver.ended {
                acked = receiver.offset(of: seg.acknowledgmentNumber, base: base)
            }
            let p = Pending(seq: seq, payload: seg.payload, missing: seg.missingPayloadBytes,
                            fin: seg.flags.contains(.fin), acked: acked, stamp: now)
            if !sender.waitingIsEmpty || (acked ?? 0) > receiver.next {
                sender.enqueueWaiting(p)
                if sender.waitingBytes > configuration.maxHeldBytesPerDirection || sender.waitingCount > configuration.maxHeldSegmentsPerDirection {
                    forceRelease(c, now, &events)
                }
            } else {
                deliver(p, sender, c, direction, now, &events)
            }
        }

        // This ACK is about the other direction's stream. Once its FIN is acknowledged,
        // its receiver had every byte before it, so holes there were lost by the
        // capture and can never be filled: declare them now.
        if seg.flags.contains(.ack), let base = receiver.base, let fin = receiver.finOffset, !receiver.ended {
            let acked = receiver.offset(of: seg.acknowledgmentNumber, base: base)
            if acked > fin {
                flush(receiver, c, direction.other, now, &events)
            }
        }

        release(c, now, &events)

        if seg.flags.contains(.rst) {
            forceRelease(c, now, &events)
            for (state, d) in [(sender, direction), (receiver, direction.other)] where !state.ended {
                flush(state, c, d, now, &events)
                if !state.ended {
                    state.ended = true
                    events.append(.end(connection: c.info.id, direction: d, reason: .reset, frame: frame, time: time))
                }
            }
            c.isReset = true
        }
    }

    /// End of input: every hole still open is declared a gap and held bytes after it are
    /// delivered, so nothing captured is lost. Streams without FIN/RST get no `end`.
    public func finish(frame: Int, time: UInt64, into events: inout [CaptureEvent]) {
        let now = Stamp(frame: frame, time: time)
        for (_, c) in connections.sorted(by: { $0.key < $1.key }) where !c.isRetired {
            forceRelease(c, now, &events)
            for (state, d) in c.directions() where !state.ended {
                flush(state, c, d, now, &events)
            }
        }
    }

    // MARK: - Direct delivery (the in-place reader)

    /// The connection and direction a segment's data goes to (`directStream(for:)`).
    struct DirectStream {
        var connection: Int
        var direction: StreamDirection
    }

    /// The stream whose `next` `advanceDirect` moves.
    private var direct: DirectionState?

    /// When `process` would do nothing with this segment but deliver all its payload at
    /// once as one `.data` event (its connection is known, the data is next in sequence,
    /// nothing is held, waiting or lost in either direction, no SYN, FIN or RST, and its
    /// ACK neither holds it back nor ends a hole), the stream it goes to; the caller then
    /// hands the payload on itself, piece by piece (`advanceDirect`), copying only what
    /// must be read. nil: the segment must go through `process`. Counts nothing.
    func directStream(for f: SegmentFields) -> DirectStream? {
        guard f.missingPayloadBytes == 0, !f.payload.isEmpty, f.flags.contains(.ack),
              f.flags.isDisjoint(with: [.syn, .fin, .rst]),
              let c = active[FlowKey(f.source, f.destination)], !c.isRetired else { return nil }
        let sender = c.state(of: f.source), receiver = c.state(of: f.destination)
        guard let base = sender.base, !sender.ended, sender.finOffset == nil, sender.held.isEmpty, sender.lost.isEmpty,
              sender.waitingIsEmpty, receiver.waitingIsEmpty, receiver.finOffset == nil || receiver.ended,
              sender.offset(of: f.sequenceNumber, base: base) == sender.next else { return nil }
        if let receiverBase = receiver.base {
            // Data acknowledging bytes not delivered yet waits for them (see `process`).
            if !receiver.ended && receiver.offset(of: f.acknowledgmentNumber, base: receiverBase) > receiver.next { return nil }
        } else if c.handshakeSeen {
            return nil  // this ACK gives the other side's first sequence number
        }
        direct = sender
        return DirectStream(connection: c.info.id, direction: f.source == c.info.client ? .clientToServer : .serverToClient)
    }

    /// Counts the segment of the last `directStream`, as `process` counts each segment.
    func countDirectSegment() {
        counters.tcpSegments += 1
    }

    /// `count` more bytes of the last `directStream` were handed on by the caller.
    func advanceDirect(by count: Int) {
        direct?.next += Int64(count)
    }

    // MARK: - Per direction

    private func accept(_ s: DirectionState, _ c: Connection, _ d: StreamDirection, start: Int64, payload: ByteBuffer,
                        lostUntil: Int64, _ now: Stamp, _ events: inout [CaptureEvent]) {
        var start = start
        var payload = payload
        var lostUntil = lostUntil
        if let fin = s.finOffset {
            // Nothing follows a FIN.
            if start >= fin {
                counters.segmentsAfterEnd += 1
                return
            }
            if lostUntil > fin {
                lostUntil = fin
                let keep = Int(max(0, min(Int64(payload.readableBytes), fin - start)))
                payload = payload.getSlice(at: payload.readerIndex, length: keep) ?? payload
            }
        }
        let dataEnd = start + Int64(payload.readableBytes)
        if lostUntil <= s.next {
            counters.retransmittedSegments += 1
            counters.retransmittedBytes += payload.readableBytes
            return
        }
        if start < 0 {  // begins before the first byte we started the stream at
            let cut = Int(-start)
            counters.retransmittedBytes += min(cut, payload.readableBytes)
            payload.moveReaderIndex(forwardBy: min(cut, payload.readableBytes))
            start = 0
        }
        if lostUntil > dataEnd { s.markLost(dataEnd..<lostUntil) }
        if payload.readableBytes > 0 {
            if start > s.next {
                // Ahead of a hole: hold, unless held data already covers it.
                if s.covers(start: start, end: dataEnd) {
                    counters.retransmittedSegments += 1
                    counters.retransmittedBytes += payload.readableBytes
                    return
                }
                counters.outOfOrderSegments += 1
            }
            s.insert(Held(start: start, bytes: payload))
        }
        drain(s, c, d, now, &events)
        while s.heldBytes > configuration.maxHeldBytesPerDirection || s.held.count > configuration.maxHeldSegmentsPerDirection,
              let first = s.held.first {
            declareGap(s, c, d, upTo: first.start, now, &events)
            drain(s, c, d, now, &events)
        }
    }

    /// Deliver everything that now connects to `next`, then emit the FIN's end if reached.
    private func drain(_ s: DirectionState, _ c: Connection, _ d: StreamDirection, _ now: Stamp, _ events: inout [CaptureEvent]) {
        var i = 0
        while true {
            while i < s.held.count, s.held[i].start <= s.next {
                let h = s.held[i]
                i += 1
                s.heldBytes -= h.bytes.readableBytes
                let end = h.start + Int64(h.bytes.readableBytes)
                if end <= s.next {
                    counters.retransmittedBytes += h.bytes.readableBytes
                    continue
                }
                let skip = Int(s.next - h.start)
                counters.retransmittedBytes += skip
                var bytes = h.bytes
                bytes.moveReaderIndex(forwardBy: skip)
                events.append(.data(connection: c.info.id, direction: d, bytes: bytes, frame: now.frame, time: now.time))
                s.next = end
            }
            // Bytes the snaplen cut off are lost for good: no point waiting for them.
            while let r = s.lost.first, r.upperBound <= s.next { s.lost.removeFirst() }
            if let r = s.lost.first, r.lowerBound <= s.next {
                let limit = i < s.held.count ? min(r.upperBound, s.held[i].start) : r.upperBound
                declareGap(s, c, d, upTo: limit, now, &events)
                continue
            }
            break
        }
        s.held.removeFirst(i)
        if let fin = s.finOffset, s.next >= fin, !s.ended {
            s.ended = true
            events.append(.end(connection: c.info.id, direction: d, reason: .fin, frame: now.frame, time: now.time))
        }
    }

    private func declareGap(_ s: DirectionState, _ c: Connection, _ d: StreamDirection, upTo offset: Int64,
                            _ now: Stamp, _ events: inout [CaptureEvent]) {
        guard offset > s.next else { return }
        let length = UInt64(offset - s.next)
        counters.gaps += 1
        counters.gapBytes += length
        events.append(.gap(connection: c.info.id, direction: d, length: length, frame: now.frame, time: now.time))
        s.next = offset
    }

    /// Accepts a segment's data (or FIN) into its direction's stream.
    private func deliver(_ p: Pending, _ s: DirectionState, _ c: Connection, _ d: StreamDirection, _ now: Stamp, _ events: inout [CaptureEvent]) {
        guard let base = s.base else { return }
        let hasData = p.payload.readableBytes > 0 || p.missing > 0
        if s.ended {
            if hasData { counters.segmentsAfterEnd += 1 }
            return
        }
        let start = s.offset(of: p.seq, base: base)
        let dataEnd = start + Int64(p.payload.readableBytes)
        let end = dataEnd + Int64(p.missing)
        if p.fin, s.finOffset == nil, end >= s.next {
            s.finOffset = end
        }
        if hasData {
            accept(s, c, d, start: start, payload: p.payload, lostUntil: end, now, &events)
        } else {
            drain(s, c, d, now, &events)
        }
    }

    /// Delivers waiting segments whose acknowledged bytes of the other direction have now
    /// been delivered, in both directions, until neither can move.
    private func release(_ c: Connection, _ now: Stamp, _ events: inout [CaptureEvent]) {
        var moved = true
        while moved {
            moved = false
            for (s, d) in c.directions() {
                let other = c.state(of: d == .clientToServer ? c.info.server : c.info.client)
                while let p = s.firstWaiting, (p.acked ?? 0) <= other.next || other.ended {
                    _ = s.dequeueWaiting()
                    deliver(p, s, c, d, now, &events)
                    moved = true
                }
            }
        }
    }

    /// Gives up waiting: the other direction's bytes that waiting data acknowledged are
    /// declared missing (they will not come), then the data is delivered, oldest first.
    /// Released data carries the releasing frame, like bytes held for a hole.
    private func forceRelease(_ c: Connection, _ now: Stamp, _ events: inout [CaptureEvent]) {
        release(c, now, &events)
        while true {
            let candidates = c.directions().filter { !$0.0.waitingIsEmpty }
            guard let (s, d) = candidates.min(by: { $0.0.firstWaiting!.stamp.frame < $1.0.firstWaiting!.stamp.frame }) else { return }
            let other = c.state(of: d == .clientToServer ? c.info.server : c.info.client)
            let p = s.firstWaiting!
            if let acked = p.acked, acked > other.next {
                settle(other, c, d.other, upTo: acked, now, &events)
            }
            _ = s.dequeueWaiting()
            deliver(p, s, c, d, now, &events)
            release(c, now, &events)
        }
    }

    /// Give up on the holes of a direction below `offset` (which its receiver acknowledged).
    private func settle(_ s: DirectionState, _ c: Connection, _ d: StreamDirection, upTo offset: Int64,
                        _ now: Stamp, _ events: inout [CaptureEvent]) {
        drain(s, c, d, now, &events)
        while s.next < offset {
            let limit = s.held.first.map { min($0.start, offset) } ?? offset
            declareGap(s, c, d, upTo: limit, now, &events)
            drain(s, c, d, now, &events)
            if s.held.first == nil || s.held.first!.start >= offset { 
                if s.next < offset { declareGap(s, c, d, upTo: offset, now, &events) }
                break
            }
        }
    }

    /// Give up on every hole of a direction: gaps for the missing bytes, delivery of
    /// all held bytes, and the gap up to the FIN if the FIN was seen.
    private func flush(_ s: DirectionState, _ c: Connection, _ d: StreamDirection, _ now: Stamp, _ events: inout [CaptureEvent]) {
        drain(s, c, d, now, &events)
        while let first = s.held.first {
            declareGap(s, c, d, upTo: first.start, now, &events)
            drain(s, c, d, now, &events)
        }
        if let r = s.lost.last, r.upperBound > s.next {
            declareGap(s, c, d, upTo: r.upperBound, now, &events)
            s.lost.removeAll()
        }
        if let fin = s.finOffset, s.next < fin {
            declareGap(s, c, d, upTo: fin, now, &events)
            drain(s, c, d, now, &events)
        }
    }

    /// A connection replaced by a new one on the same 4-tuple: flush what it held.
    /// Ends and forgets the connection that started first among those kept.
    private func evictOldest(_ now: Stamp, _ events: inout [CaptureEvent]) {
        while startOrderHead < startOrder.count {
            let (key, id) = startOrder[startOrderHead]
            startOrderHead += 1
            guard let c = active[key], c.info.id == id else { continue }
            active[key] = nil
            connections[id] = nil
            if !c.isRetired {
                retire(c, now, &events)
                for (state, d) in c.directions() where !state.ended {
                    state.ended = true
                    events.append(.end(connection: c.info.id, direction: d, reason: .evicted, frame: now.frame, time: now.time))
                }
                counters.evictedConnections += 1
            }
            break
        }
        if startOrderHead > 4096 && startOrderHead * 2 > startOrder.count {
            startOrder.removeFirst(startOrderHead)
            startOrderHead = 0
        }
    }

    private func retire(_ c: Connection, _ now: Stamp, _ events: inout [CaptureEvent]) {
        forceRelease(c, now, &events)
        for (state, d) in c.directions() where !state.ended {
            flush(state, c, d, now, &events)
        }
        c.isRetired = true
        connections[c.info.id] = nil
    }
}

// MARK: - State

private struct Stamp {
    var frame: Int
    var time: UInt64
}

/// A 4-tuple with the two endpoints in a fixed order, so both directions find the same connection.
private struct FlowKey: Hashable {
    var a: Endpoint
    var b: Endpoint
    init(_ x: Endpoint, _ y: Endpoint) {
        if x < y { (a, b) = (x, y) } else { (a, b) = (y, x) }
    }
}

/// A segment of one direction waiting for the other direction's bytes it acknowledges.
private struct Pending {
    var seq: UInt32
    var payload: ByteBuffer
    var missing: Int
    var fin: Bool
    /// Offset in the other direction's stream this segment acknowledged.
    var acked: Int64?
    var stamp: Stamp
}

private struct Held {
    var start: Int64
    var bytes: ByteBuffer
}

/// A copy of held bytes in storage of their own size: a slice would keep the whole frame
/// buffer it came from alive (the capture reader reuses one large buffer per frame).
private func compactCopy(_ b: ByteBuffer) -> ByteBuffer {
    var copy = ByteBufferAllocator().buffer(capacity: b.readableBytes)
    copy.writeImmutableBuffer(b)
    return copy
}

private final class DirectionState {
    /// Sequence number of stream offset 0.
    var base: UInt32?
    /// Stream offset of the next byte to deliver.
    var next: Int64 = 0
    /// Segments ahead of `next`, sorted by start.
    var held: [Held] = []
    var heldBytes = 0
    /// Ranges that were on the wire but cut by the snaplen, sorted, disjoint.
    var lost: [Range<Int64>] = []
    /// Bound on `lost` so a hostile file cannot grow it without limit; the farthest go first.
    static let maxLostRanges = 4096
    /// Stream offset of the FIN (= length of the stream).
    var finOffset: Int64?
    var ended = false
    /// Segments waiting for the other direction (see `Pending`), in arrival order, from
    /// `waitingHead` on (an index, so releasing one is O(1) however long the queue).
    var waitingStore: [Pending] = []
    var waitingHead = 0
    var waitingBytes = 0

    var waitingIsEmpty: Bool { waitingHead == waitingStore.count }
    var firstWaiting: Pending? { waitingIsEmpty ? nil : waitingStore[waitingHead] }
    var waitingCount: Int { waitingStore.count - waitingHead }

    func enqueueWaiting(_ p: Pending) {
        var p = p
        p.payload = compactCopy(p.payload)
        waitingStore.append(p)
        waitingBytes += p.payload.readableBytes
    }

    func dequeueWaiting() -> Pending {
        let p = waitingStore[waitingHead]
        waitingHead += 1
        waitingBytes -= p.payload.readableBytes
        if waitingHead == waitingStore.count {
            waitingStore.removeAll(keepingCapacity: true)
            waitingHead = 0
        } else if waitingHead > 1024 && waitingHead * 2 > waitingStore.count {
            waitingStore.removeFirst(waitingHead)
            waitingHead = 0
        }
        return p
    }

    /// The 64-bit offset of a 32-bit sequence number: the one nearest to `next`.
    func offset(of seq: UInt32, base: UInt32) -> Int64 {
        let relative = seq &- base
        let delta = Int32(bitPattern: relative &- UInt32(truncatingIfNeeded: next))
        return next + Int64(delta)
    }

    func markLost(_ r: Range<Int64>) {
        var merged = r
        var kept: [Range<Int64>] = []
        kept.reserveCapacity(lost.count + 1)
        for x in lost {
            if x.upperBound < merged.lowerBound || x.lowerBound > merged.upperBound {
                kept.append(x)
            } else {
                merged = min(x.lowerBound, merged.lowerBound)..<max(x.upperBound, merged.upperBound)
            }
        }
        let at = kept.firstIndex { $0.lowerBound > merged.lowerBound } ?? kept.count
        kept.insert(merged, at: at)
        if kept.count > DirectionState.maxLostRanges { kept.removeLast(kept.count - DirectionState.maxLostRanges) }
        lost = kept
    }

    /// Index of the first held segment starting after `start` (binary search).
    private func insertionIndex(_ start: Int64) -> Int {
        var lo = 0, hi = held.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if held[mid].start <= start { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    func insert(_ h: Held) {
        var h = h
        h.bytes = compactCopy(h.bytes)
        held.insert(h, at: insertionIndex(h.start))
        heldBytes += h.bytes.readableBytes
    }

    /// True if held segments already contain every byte of [start, end). Looks at the
    /// few segments starting just before `start` (retransmissions repeat a held
    /// segment or its neighbours), so the cost does not grow with the backlog.
    func covers(start: Int64, end: Int64) -> Bool {
        var pos = start
        var i = max(0, insertionIndex(start) - 4)
        while i < held.count, held[i].start <= pos {
            pos = max(pos, held[i].start + Int64(held[i].bytes.readableBytes))
            if pos >= end { return true }
            i += 1
        }
        return false
    }
}

private final class Connection {
    var info: ConnectionInfo
    var clientISN: UInt32?
    var serverISN: UInt32?
    var handshakeSeen = false
    var isReset = false
    var isRetired = false
    private let first = DirectionState()
    private let second = DirectionState()
    private let firstSender: Endpoint

    init(info: ConnectionInfo) {
        self.info = info
        firstSender = info.client
    }

    /// State of the stream sent by `endpoint` (fixed per endpoint, so `swapRoles` only
    /// changes which direction it is reported as).
    func state(of endpoint: Endpoint) -> DirectionState {
        endpoint == firstSender ? first : second
    }

    func directions() -> [(DirectionState, StreamDirection)] {
        [(state(of: info.client), .clientToServer), (state(of: info.server), .serverToClient)]
    }

    /// Both directions ended (FIN delivered or RST): a new SYN on the 4-tuple is a new connection.
    var isClosed: Bool {
        isReset || (first.ended && second.ended)
    }
}
