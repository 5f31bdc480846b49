import NBDEmulation
import NBDProtocol
import NIOCore

/// Replies nbdtap writes itself, and when they may enter the client's stream.
extension PolicyEngine {
    /// nbdtap's own reply to a request, in the form the client negotiated: simple, a
    /// structured error chunk for READ, and under extended headers (where simple replies
    /// are not allowed) an extended NBD_REPLY_TYPE_NONE chunk for success or an extended
    /// error chunk.
    func reply(to h: RequestHeader, error: ErrorValue) -> ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: 48)
        if extended && error == .ok {
            ReplyChunkHeader(flags: .done, type: .none, cookie: h.cookie, offset: h.offset, length: 0, extended: true).write(to: &b)
        } else if extended || (structured && h.command == .read) {
            let payload = ChunkPayload.error(error: error, message: "")
            ReplyChunkHeader(flags: .done, type: .error, cookie: h.cookie, offset: h.offset,
                             length: payload.wireLength, extended: extended).write(to: &b)
            payload.write(to: &b)
        } else {
            SimpleReplyHeader(error: error, cookie: h.cookie).write(to: &b)
        }
        return b
    }

    /// `--no-extents`: one BLOCK_STATUS chunk per context, each one extent of `length`
    /// bytes with status 0 (allocated data), the last chunk marked done.
    func allDataReply(to h: RequestHeader, contexts: [UInt32], length: UInt64) -> ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: 40 * contexts.count)
        for (i, id) in contexts.enumerated() {
            let descriptor = BlockDescriptor(length: extended ? length : min(length, UInt64(UInt32.max)), status: 0)
            let payload: ChunkPayload = extended ? .blockStatusExt(contextID: id, descriptors: [descriptor])
                                                 : .blockStatus(contextID: id, descriptors: [descriptor])
            ReplyChunkHeader(flags: i == contexts.count - 1 ? .done : [], type: extended ? .blockStatusExt : .blockStatus,
                             cookie: h.cookie, offset: h.offset, length: payload.wireLength, extended: extended).write(to: &b)
            payload.write(to: &b)
        }
        return b
    }

    /// nbdtap's replies that are due, once the stream relayed to the client is between
    /// messages; the first not yet due stops the rest (they keep their order).
    func releaseReplies(_ session: ProxySession, _ out: inout Output) {
        guard !pendingReplies.isEmpty, upstream.atMessageBoundary(.serverToClient),
              fromUpstream.start == upstream.decidedOffset(.serverToClient) else { return }
        let now = monotonicNanoseconds()
        var ready: [ByteBuffer] = []
        while let r = pendingReplies.first {
            if r.due > now {
                wake(at: r.due)
                break
            }
            ready.append(r.bytes)
            pendingReplies.removeFirst()
            if r.startsTLS {
                // Nothing after the ACK may go out in plaintext.
                out.startClientTLS = true
                break
            }
        }
        sendClient(ready, session, &out)
    }

    /// A reply of nbdtap's own sent at once, outside a read (the upstream is gone, so its
    /// stream has no message under way).
    func replyNow(_ reply: ByteBuffer, session: ProxySession) -> Output {
        var out = Output()
        sendClient([reply], session, &out)
        session.flushLog()
        return out
    }
}

