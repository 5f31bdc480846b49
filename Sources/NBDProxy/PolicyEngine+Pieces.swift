import NBDConversation
import NBDEmulation
import NBDProtocol
import NIOCore

/// Client requests served by requests of nbdtap's own: WRITE_ZEROES emulated by WRITEs
/// of zeroes, and READs and WRITEs longer than `--max-payload` split into pieces. The
/// client sees one reply: for WRITEs and zeroes when the last piece is answered (the
/// first error, or success); for a split READ with structured replies the pieces' chunks
/// under the client's cookie, then a final chunk of nbdtap's; without structured replies
/// (a simple reply cannot be interleaved or carry a late error) the READ waits until the
/// upstream is idle, its pieces go one after another, and nothing else is forwarded
/// meanwhile.
extension PolicyEngine {
    struct OwnRequest {
        enum Kind {
            /// A WRITE (of zeroes, or a piece of a client's WRITE): its reply is dropped.
            case write
            /// A piece of a READ under structured replies: its chunks are relayed.
            case structuredRead
            /// A piece of a READ under simple replies: the first piece's header becomes the
            /// client's, later ones are dropped.
            case sequentialRead(index: UInt64)
        }
        var clientCookie: UInt64
        var kind: Kind
        var length: UInt64
    }

    /// Zeroes shared by every emulated WRITE of every connection (sliced, never copied,
    /// allocated on first use).
    static let zeroes: ByteBuffer = {
        var b = ByteBufferAllocator().buffer(capacity: Int(ZeroWrites.defaultPieceLength))
        b.writeRepeatingByte(0, count: Int(ZeroWrites.defaultPieceLength))
        return b
    }()

    /// A client request served by several of nbdtap's: the pieces still unanswered and the
    /// first error, so the client gets one reply when the last piece is answered.
    struct Aggregate {
        var request: RequestHeader
        /// Pieces sent and not answered yet.
        var remaining: UInt64
        var error: ErrorValue = .ok
        /// An emulated zero's WRITEs, sent a window at a time: the rest go as earlier ones
        /// are answered, so a zero of any length costs bounded memory.
        var writes: ZeroWrites?
        var nextWrite = 0
        /// An error chunk of a piece already reached the client (structured READ).
        var errorRelayed = false
    }

    /// A split READ without structured replies: the pieces go one by one.
    struct SequentialRead {
        var request: RequestHeader
        var piece: UInt32
        var next: UInt64 = 1
        var count: UInt64
    }

    /// Emulated zero WRITEs in flight per client WRITE_ZEROES at most.
    static let zeroWindow = 16

    /// The first WRITEs of zeroes standing in for a client's WRITE_ZEROES (at most
    /// `zeroWindow`; `pieceAnswered` sends the rest), each with a cookie of nbdtap's own
    /// and a slice of the shared zero buffer as payload.
    /// `client` is the client's conversation as it stands (the cookies it has in flight).
    func emulate(_ request: RequestHeader, _ writes: ZeroWrites, client: borrowing ConversationDecoder) -> [ByteBuffer] {
        guard !writes.isEmpty else { return [] }
        let first = min(writes.count, Self.zeroWindow)
        aggregates[request.cookie] = Aggregate(request: request, remaining: UInt64(first), writes: writes, nextWrite: first)
        return (0..<first).flatMap { zeroWrite(writes[writes.startIndex + $0], for: request.cookie, client) }
    }

    /// One WRITE of zeroes: its header and the zero slices.
    func zeroWrite(_ w: ZeroWrite, for clientCookie: UInt64, _ client: borrowing ConversationDecoder) -> [ByteBuffer] {
        let cookie = ownCookie(client)
        ownCookies[cookie] = OwnRequest(clientCookie: clientCookie, kind: .write, length: UInt64(w.length))
        var out = [header(.write, w.fua ? .fua : [], cookie: cookie, offset: w.offset, length: UInt64(w.length))]
        var left = Int(w.length)
        while left > 0 {
            let z = Self.zeroes
            let n = min(left, z.readableBytes)
            out.append(z.getSlice(at: z.readerIndex, length: n)!)
            left -= n
        }
        return out
    }

    /// A request header of nbdtap's own, framed as this connection negotiated.
    func header(_ command: NBDCommand, _ flags: CommandFlags, cookie: UInt64, offset: UInt64, length: UInt64) -> ByteBuffer {
        var flags = flags
        if extended && command == .write { flags.insert(.payloadLen) }
        var b = ByteBufferAllocator().buffer(capacity: RequestHeader.extendedLength)
        RequestHeader(flags: flags, command: command, cookie: cookie, offset: offset, length: length, extended: extended).write(to: &b)
        return b
    }

    /// `--max-payload`: a READ or WRITE as `count` pieces of at most `piece` (the plan's).
    func split(_ r: RequestEvent, _ h: RequestHeader, into count: UInt64, of piece: UInt32, at offset: UInt64,
               client: borrowing ConversationDecoder, session: ProxySession) {
        let headerEnd = offset + UInt64(r.header.wireLength)
        let flags = h.flags.subtracting(.payloadLen)
        func pieceLength(_ i: UInt64) -> UInt64 { min(UInt64(piece), h.length - i * UInt64(piece)) }
        session.note("Split", [("id", String(r.id)), ("pieces", String(count)), ("max_payload", String(piece))])
        switch h.command {
        case .write:
            aggregates[h.cookie] = Aggregate(request: h, remaining: count)
            for i in 0..<count {
                let cookie = ownCookie(client)
                ownCookies[cookie] = OwnRequest(clientCookie: h.cookie, kind: .write, length: pieceLength(i))
                let bytes = header(.write, flags, cookie: cookie, offset: h.offset &+ i &* UInt64(piece), length: pieceLength(i))
                if i == 0 {
                    clientEdits.append(Edit(start: offset, end: headerEnd, replacement: [bytes]))
                } else {
                    let at = headerEnd &+ i &* UInt64(piece)
                    clientEdits.append(Edit(start: at, end: at, replacement: [bytes]))
                }
            }
        case .read where structured:
            aggregates[h.cookie] = Aggregate(request: h, remaining: count)
            var headers: [ByteBuffer] = []
            for i in 0..<count {
                let cookie = ownCookie(client)
                ownCookies[cookie] = OwnRequest(clientCookie: h.cookie, kind: .structuredRead, length: pieceLength(i))
                headers.append(header(.read, flags, cookie: cookie, offset: h.offset &+ i &* UInt64(piece), length: pieceLength(i)))
            }
            clientEdits.append(Edit(start: offset, end: headerEnd, replacement: headers))
        case .read:
            let cookie = ownCookie(client)
            ownCookies[cookie] = OwnRequest(clientCookie: h.cookie, kind: .sequentialRead(index: 0), length: pieceLength(0))
            sequentialReads[h.cookie] = SequentialRead(request: h, piece: piece, count: count)
            holds.append(Hold(offset: offset, until: .upstreamIdle))
            clientEdits.append(Edit(start: offset, end: headerEnd, replacement: [header(.read, flags, cookie: cookie, offset: h.offset, length: pieceLength(0))]))
            holds.append(Hold(offset: headerEnd, until: .sequentialReadDone(h.cookie)))
        case .disc, .flush, .trim, .cache, .writeZeroes, .blockStatus, .resize, .unknown:
            break
        }
    }

    /// A simple reply to one of nbdtap's requests. Returns a reason to close when the
    /// client can no longer be told the truth (a later piece of a simple READ failed).
    func ownSimpleReply(_ h: SimpleReplyHeader, at offset: UInt64) -> String? {
        guard let own = ownCookies[h.cookie] else { return nil }
        let header = UInt64(SimpleReplyHeader.length)
        switch own.kind {
        case .write:
            upstreamEdits.append(Edit(start: offset, end: offset + header))
        case .structuredRead:
            // Not what a server with structured replies sends for READ; dropped with its
            // data, and its error kept for the client's final chunk.
            upstreamEdits.append(Edit(start: offset, end: offset + header + (h.error == .ok ? own.length : 0)))
        case .sequentialRead(let index):
            if index == 0 {
                var bytes = ByteBufferAllocator().buffer(capacity: SimpleReplyHeader.length)
                SimpleReplyHeader(error: h.error, cookie: own.clientCookie).write(to: &bytes)
                upstreamEdits.append(Edit(start: offset, end: offset + header, replacement: [bytes]))
            } else {
                upstreamEdits.append(Edit(start: offset, end: offset + header))
                if h.error != .ok {
                    return "piece \(index + 1) of a split READ failed with \(h.error.name) after its simple reply began (--max-payload)"
                }
            }
        }
        return nil
    }

    /// A chunk of a piece of a structured READ: relayed under the client's cookie, never
    /// as the last chunk (nbdtap sends that).
    func ownChunk(_ h: ReplyChunkHeader, at offset: UInt64) {
        guard let own = ownCookies[h.cookie] else { return }
        switch own.kind {
        case .write, .sequentialRead:
            upstreamEdits.append(Edit(start: offset, end: Self.sum(offset + UInt64(h.wireLength), h.length)))
        case .structuredRead:
            guard var a = aggregates[own.clientCookie] else { return }
            if h.type.isError { a.errorRelayed = true; aggregates[own.clientCookie] = a }
            if h.type == .none { upstreamEdits.append(Edit(start: offset, end: offset + UInt64(h.wireLength))); return }
            var flags = h.flags
            flags.remove(.done)
            var bytes = ByteBufferAllocator().buffer(capacity: h.wireLength)
            ReplyChunkHeader(flags: flags, type: h.type, cookie: own.clientCookie, offset: extended ? a.request.offset : h.offset,
                             length: h.length, extended: extended).write(to: &bytes)
            upstreamEdits.append(Edit(start: offset, end: offset + UInt64(h.wireLength), replacement: [bytes]))
        }
    }

    /// One of nbdtap's requests was answered. Returns the next piece of a sequential READ
    /// to send upstream, if one is due.
    func pieceAnswered(_ c: CompletedRequest, session: ProxySession) -> [ByteBuffer] {
        guard let own = ownCookies.removeValue(forKey: c.request.cookie) else { return [] }
        let client = session.tap.decoder
        let failed = c.outcome != .replied || c.error != .ok
        switch own.kind {
        case .sequentialRead:
            guard var s = sequentialReads[own.clientCookie] else { return [] }
            if failed || s.next >= s.count {
                sequentialReads[own.clientCookie] = nil
                return []
            }
            let cookie = ownCookie(client)
            let at = s.request.offset &+ s.next &* UInt64(s.piece)
            let length = min(UInt64(s.piece), s.request.length - s.next &* UInt64(s.piece))
            ownCookies[cookie] = OwnRequest(clientCookie: own.clientCookie, kind: .sequentialRead(index: s.next), length: length)
            s.next += 1
            sequentialReads[own.clientCookie] = s
            return [header(.read, s.request.flags.subtracting(.payloadLen), cookie: cookie, offset: at, length: length)]
        case .write, .structuredRead:
            guard var a = aggregates[own.clientCookie] else { return [] }
            a.remaining -= 1
            if a.error == .ok && failed { a.error = c.error == .ok ? .eio : c.error }
            var next: [ByteBuffer] = []
            if a.error == .ok, let writes = a.writes, a.nextWrite < writes.count {
                // The first error stops the rest, as nbdkit's emulation does.
                next = zeroWrite(writes[writes.startIndex + a.nextWrite], for: own.clientCookie, client)
                a.nextWrite += 1
                a.remaining += 1
            }
            if a.remaining > 0 {
                aggregates[own.clientCookie] = a
                return next
            }
            aggregates[own.clientCookie] = nil
            if case .structuredRead = own.kind {
                pendingReplies.append(PendingReply(due: 0, bytes: finalChunk(a)))
            } else {
                pendingReplies.append(PendingReply(due: 0, bytes: reply(to: a.request, error: a.error)))
            }
            return []
        }
    }

    /// The last chunk of a split READ: NONE when its pieces' chunks said it all (an
    /// error chunk included), an error chunk for an error only a simple reply carried.
    func finalChunk(_ a: Aggregate) -> ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: 48)
        if a.error == .ok || a.errorRelayed {
            ReplyChunkHeader(flags: .done, type: .none, cookie: a.request.cookie, offset: a.request.offset, length: 0,
                             extended: extended).write(to: &b)
        } else {
            let payload = ChunkPayload.error(error: a.error, message: "")
            ReplyChunkHeader(flags: .done, type: .error, cookie: a.request.cookie, offset: a.request.offset,
                             length: payload.wireLength, extended: extended).write(to: &b)
            payload.write(to: &b)
        }
        return b
    }
}
