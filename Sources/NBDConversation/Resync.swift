import NBDProtocol
import NIOCore

/// Decoding across holes: bytes missing from a capture, or a capture that starts after the
/// handshake. The decoder then hunts for the next message it can recognise with certainty
/// (a magic plus a header consistent with what it knows) and never invents requests.
extension ConversationDecoder {
    /// The handshake is unknown from here on: transmission is assumed, negotiated features
    /// are inferred from what is seen, and both directions hunt.
    mutating func loseNegotiation() {
        negotiationKnown = false
        lossy = true
        phase = .transmission
        structuredReplies = true
        c2s.hunting = true
        s2c.hunting = true
    }

    /// Reports `length` bytes of a direction missing (kernel drops, snaplen truncation).
    /// A hole inside a payload being passed over costs nothing; anywhere else the partial
    /// message is dropped and the direction hunts for the next recognisable one.
    public mutating func gap(_ d: StreamDirection, length: UInt64, at time: UInt64, into events: inout [ConversationEvent]) {
        guard length > 0 else { return }
        lossy = true
        var s = state(d)
        emit(d, s.offset + UInt64(s.pending.readableBytes), time, .gap(missing: length), &events)
        if s.dead { s.offset += length; withState(d) { $0 = s }; return }
        if s.skip >= length && s.pending.readableBytes == 0 {
            s.skip -= length
            s.offset += length
            withState(d) { $0 = s }
            if s.skip == 0, d == .serverToClient, let done = completionAfterPayload {
                // The hole ended exactly where a READ's data ends (a capture cut at a
                // snaplen, say): the server sent all of it, so the READ is answered, as
                // when the bytes are fed or passed.
                completionAfterPayload = nil
                events.append(done)
            }
            return
        }
        s.offset += UInt64(s.pending.readableBytes) + length
        s.huntSkipped += UInt64(s.pending.readableBytes)
        s.pending.clear()
        s.skip = 0
        s.hunting = true
        withState(d) { $0 = s }
        if phase != .transmission && phase != .tls {
            // The handshake itself was lost: what it negotiated can only be inferred now.
            loseNegotiation()
        }
    }

    /// The header length a magic announces, or 0 for anything else.
    static func headerLength(_ magic: UInt32) -> Int {
        switch magic {
        case NBDMagic.request: return RequestHeader.compactLength
        case NBDMagic.extendedRequest: return RequestHeader.extendedLength
        case NBDMagic.simpleReply: return SimpleReplyHeader.length
        case NBDMagic.structuredReply: return ReplyChunkHeader.structuredLength
        case NBDMagic.extendedReply: return ReplyChunkHeader.extendedLength
        default: return 0
        }
    }

    /// Scans pending bytes and `input` for the next recognisable message. Returns true
    /// when found (the direction stops hunting and the message is next in `pending` or
    /// `input`), false when more bytes are needed.
    mutating func hunt(_ d: StreamDirection, _ input: inout ByteBuffer, _ time: UInt64, _ events: inout [ConversationEvent]) -> Bool {
        var buf: ByteBuffer
        let fromPending = state(d).pending.readableBytes > 0
        if fromPending {
            buf = state(d).pending
            buf.writeBuffer(&input)
        } else {
            buf = input
            input.moveReaderIndex(forwardBy: input.readableBytes)
        }
        let found: Int? = buf.withUnsafeReadableBytes { raw -> Int? in
            var i = 0
            while i + 4 <= raw.count {
                let b = raw[i]
                // First bytes of the request and reply magics: 0x25, 0x21 / 0x67, 0x66, 0x6e.
                let first: Bool = d == .clientToServer ? (b == 0x25 || b == 0x21) : (b == 0x67 || b == 0x66 || b == 0x6e)
                if first {
                    let magic = UInt32(raw[i]) << 24 | UInt32(raw[i + 1]) << 16 | UInt32(raw[i + 2]) << 8 | UInt32(raw[i + 3])
                    let need = Self.headerLength(magic)
                    if need > 0 {
                        // A header can end exactly where the bytes so far end: wait for just it.
                        if i + need > raw.count { return -1 - i }
                        if plausible(d, UnsafeRawBufferPointer(rebasing: raw[i..<i + need])) { return i }
                    }
                }
                i += 1
            }
            // Keep a possible magic prefix at the end.
            return -1 - max(0, raw.count - 3)
        }
        let position = found!
        if position >= 0 {
            withState(d) { s in
                s.huntSkipped += UInt64(position)
                s.offset += UInt64(position)
                s.hunting = false
            }
            buf.moveReaderIndex(forwardBy: position)
            if d == .clientToServer && !negotiationKnown {
                // Compact or extended headers, inferred from the first request's magic.
                extendedHeaders = buf.getInteger(at: buf.readerIndex, as: UInt32.self) == NBDMagic.extendedRequest
            }
            let skipped = state(d).huntSkipped
            if skipped > 0 {
                emit(d, state(d).offset, time, .skipped(bytes: skipped), &events)
                withState(d) { $0.huntSkipped = 0 }
            }
            withState(d) { $0.pending = ByteBufferAllocator().buffer(capacity: 0) }
            input = buf
            return true
        }
        let keepFrom = -1 - position
        withState(d) { s in
            s.huntSkipped += UInt64(keepFrom)
            s.offset += UInt64(keepFrom)
            buf.moveReaderIndex(forwardBy: keepFrom)
            var kept = ByteBufferAllocator().buffer(capacity: buf.readableBytes)
            kept.writeBuffer(&buf)
            s.pending = kept
        }
        return false
    }

    /// Whether a whole header starting at a magic looks real for this direction.
    func plausible(_ d: StreamDirection, _ h: UnsafeRawBufferPointer) -> Bool {
        func u16(_ at: Int) -> UInt16 { UInt16(h[at]) << 8 | UInt16(h[at + 1]) }
        func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) << 16 | UInt32(u16(at + 2)) }
        func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) << 32 | UInt64(u32(at + 4)) }
        let magic = u32(0)
        switch d {
        case .clientToServer:
            guard magic == NBDMagic.request || magic == NBDMagic.extendedRequest else { return false }
            let extended = magic == NBDMagic.extendedRequest
            if negotiationKnown && extended != extendedHeaders { return false }
            let flags = u16(4), type = u16(6)
            guard flags & ~CommandFlags.known.rawValue == 0, type <= 8 else { return false }
            if case .unknown = NBDCommand(rawValue: type) { return false }
            let length = extended ? u64(24) : UInt64(u32(24))
            if exportSize > 0 && u64(16) &+ length > exportSize && type != NBDCommand.disc.rawValue { return false }
            return true
        case .serverToClient:
            switch magic {
            case NBDMagic.simpleReply:
                guard !extendedHeaders || !negotiationKnown else { return false }
                if case .unknown = ErrorValue(rawValue: u32(4)) { return false }
                return inFlight[u64(8)] != nil
            case NBDMagic.structuredReply, NBDMagic.extendedReply:
                let extended = magic == NBDMagic.extendedReply
                if negotiationKnown && extended != extendedHeaders { return false }
                guard u16(4) & ~ReplyFlags.done.rawValue == 0 else { return false }
                if case .unknown = ReplyChunkType(rawValue: u16(6)) { return false }
                return inFlight[u64(8)] != nil
            default:
                return false
            }
        }
    }
}
