import NBDConversation
import NIOCore

/// Decoding a mapped frame where it lies.
///
/// Why it is built this way: on captures of large transfers almost every byte is WRITE or
/// READ payload, which the conversation decoder skips by counting, yet copying each frame
/// into a buffer (and the kernel copying the file into libpcap's) took most of the time.
/// So when a segment's bytes would be delivered straight away (`TCPReassembler.directStream`)
/// to a connection whose decoder may be told about payload (`CaptureSessions.payloadAhead`),
/// its payload is walked here: what the decoder has ahead as payload is passed over by
/// count, everything else (headers) is copied into a small buffer and fed. Every other
/// segment (out of order, held, a connection not yet known to be NBD, the replayer's and
/// the packets view's) has its payload copied and goes through `TCPReassembler.process`,
/// exactly as libpcap's frames do; the decoder gives the same events either way
/// (`ConversationDecoder.passPayload`, and its independence of chunk boundaries).
extension CaptureReader {
    /// Bytes copied for the first feed of a run of headers: enough for any request or reply
    /// header with an OFFSET_DATA chunk's offset (40 bytes with extended headers); doubled
    /// each time the decoder still has no payload ahead, so a frame full of small messages
    /// costs a few feeds, not one per message.
    static let firstPiece = 64

    func decodeInPlace(_ frame: MappedFrame, sessions: CaptureSessions, out: inout [UInt8]) {
        reassembler.countFrame(isTruncated: frame.isTruncated)
        switch FrameParser.parseFields(frame.bytes, linkType: frame.linkType) {
        case .skipped(let reason):
            reassembler.countSkipped(reason)
        case .tcp(let f):
            if let stream = reassembler.directStream(for: f), let session = sessions.passable(stream.connection) {
                reassembler.countDirectSegment()
                walk(f.payload, of: frame, stream.direction, session, sessions: sessions, out: &out)
                return
            }
            var payload = allocator.buffer(capacity: f.payload.count)
            payload.writeBytes(UnsafeRawBufferPointer(rebasing: frame.bytes[f.payload]))
            let segment = TCPSegment(source: f.source, destination: f.destination, sequenceNumber: f.sequenceNumber,
                                     acknowledgmentNumber: f.acknowledgmentNumber, flags: f.flags, payload: payload,
                                     missingPayloadBytes: f.missingPayloadBytes)
            reassembler.process(segment, frame: frame.frameNumber, time: frame.timestamp, into: &pending)
            for e in pending { sessions.handle(e, reader: reassembler, out: &out) }
            pending.removeAll(keepingCapacity: true)
        }
    }

    /// Hands a direct segment's payload to its connection: passed where the decoder has
    /// payload ahead, copied and fed where it has not.
    private func walk(_ payload: Range<Int>, of frame: MappedFrame, _ d: StreamDirection, _ session: CaptureSessions.Session,
                      sessions: CaptureSessions, out: inout [UInt8]) {
        var at = payload.lowerBound
        var piece = Self.firstPiece
        while at < payload.upperBound {
            let left = payload.upperBound - at
            let ahead = session.payloadAhead(d)
            if ahead > 0 {
                let n = Int(min(ahead, UInt64(left)))
                reassembler.advanceDirect(by: n)
                session.passPayload(d, UInt64(n), time: frame.timestamp, out: &out)
                at += n
                bytesPassed += UInt64(n)
                piece = Self.firstPiece
            } else {
                let n = min(piece, left)
                var bytes = allocator.buffer(capacity: n)
                bytes.writeBytes(UnsafeRawBufferPointer(rebasing: frame.bytes[at..<(at + n)]))
                reassembler.advanceDirect(by: n)
                sessions.feed(session, d, bytes, frame.frameNumber, frame.timestamp, &out)
                at += n
                piece = min(piece * 2, 1 << 20)
            }
        }
    }
}

