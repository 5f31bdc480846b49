import NBDConversation
import NIOCore

/// The kernel path for payloads (PayloadSplicer.swift), as the relay uses it.
///
/// After NIO relayed a read (headers, and whatever payload came with them), the rest of a
/// large payload is spliced socket to socket before NIO is asked to read again. While
/// large payloads flow, NIO's reads are made small, so that NIO reads the headers and the
/// kernel moves the data; the first small read is also how the relay learns, from NIO's
/// own epoll, that more bytes have come. Everything else (handshake, small requests,
/// errors, EOF, backpressure) stays NIO's.
extension RelayHandler {
    /// Payloads at least this long are spliced; shorter ones cost more in system calls
    /// than their copy (a 4 KiB WRITE and its header arrive in one read anyway).
    static let kernelMinimum: UInt64 = 32 * 1024
    /// NIO's read size while large payloads flow: a header or two, not the data.
    static let smallReads = FixedSizeRecvByteBufferAllocator(capacity: 512)

    /// Whether the kernel path applies to this connection now: nothing needs the
    /// payloads' bytes in user space (no policy layer or TLS termination, no `--rate`; a
    /// `--pcap` recording takes them from the kernel), and no shutdown is under way.
    var kernelPathApplies: Bool {
        session.splicing && session.engine == nil && session.shaper == nil && !session.draining && !session.closing
    }

    /// Whether a relayed read is followed by `movePayloadInKernel`: while splicing, and
    /// once it stopped (splice refused, no pipe) until reads are large again.
    var kernelPathInUse: Bool { session.splicing || readingSmall }

    /// Called once a read was relayed and the partner flushed: splices what remains of a
    /// large payload, then sets the size of NIO's next read.
    func movePayloadInKernel(_ context: ChannelHandlerContext, partner p: ChannelHandlerContext) {
        guard kernelPathApplies else {
            smallReadsWanted(false, context)
            return
        }
        guard !waitingForPartner else { return }
        var ahead = session.spliceLimit(session.tap.decoder.payloadAhead(direction))
        // Whether NIO holds nothing for the partner: splicing before its queue would reorder.
        var partnerEmpty = ((try? p.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 1) == 0
        if ahead >= Self.kernelMinimum && partnerEmpty, let splicer = session.payloadSplicer() {
            let (source, destination) = direction == .clientToServer
                ? (session.clientDescriptor, session.upstreamDescriptor)
                : (session.upstreamDescriptor, session.clientDescriptor)
            let moved = splicer.move(from: source, to: destination, limit: ahead, direction: direction,
                                     recording: session.recording, allocator: context.channel.allocator)
            guard session.account(moved, direction) else { return }
            if let rest = moved.leftover, rest.readableBytes > 0 {
                p.writeAndFlush(wrapOutboundOut(rest), promise: nil)
                partnerEmpty = false
            }
            ahead = session.spliceLimit(session.tap.decoder.payloadAhead(direction))
        }
        if !partnerEmpty && ahead >= Self.kernelMinimum {
            // NIO still holds bytes for the partner (a full receiver): the payload waits in
            // the source socket, unread, until they are written, and is spliced then, rather
            // than read into user space behind them.
            waitForPartner(context, partner: p)
            return
        }
        // Small reads only while the kernel can take the data: not while NIO still holds
        // bytes for the partner (what follows, at most the short rest of a payload, then
        // goes NIO's way, in large reads).
        smallReadsWanted(partnerEmpty && (ahead >= Self.kernelMinimum || largePayloadsFlowing), context)
    }

    /// Stops reading this side until NIO wrote what it holds for the partner (an empty
    /// write's promise completes after the writes queued before it), then moves the
    /// payload and reads again. The source's own socket buffer is the backpressure
    /// meanwhile, as NIO's watermarks would be.
    func waitForPartner(_ context: ChannelHandlerContext, partner p: ChannelHandlerContext) {
        waitingForPartner = true
        p.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { [weak self] _ in
            guard let self else { return }
            self.waitingForPartner = false
            if let c = self.context, let p = self.partner?.context, self.kernelPathInUse {
                self.movePayloadInKernel(c, partner: p)
            }
            self.resume()
        }
    }

    /// Switches NIO's read size, only when it changes (setting an option is a few
    /// dictionary operations, not worth doing per read).
    ///
    /// NIO reads into the whole of a pooled buffer it can reuse, whatever size the
    /// allocator asks for; so while reads are to be small, the relay keeps a reference to
    /// the channel's one pooled buffer (one, because these channels read one message per
    /// wake-up: `readOnePerWakeUp`), and NIO, finding it shared, reads into a new buffer of
    /// the small size instead.
    func smallReadsWanted(_ small: Bool, _ context: ChannelHandlerContext) {
        defer { lastRead = nil }
        guard small != readingSmall, let options = context.channel.syncOptions else { return }
        readingSmall = small
        if small {
            heldBuffer = lastRead
            try? options.setOption(.recvAllocator, value: Self.smallReads)
        } else {
            heldBuffer = nil
            try? options.setOption(.recvAllocator, value: ProxyServer.recvAllocator)
        }
    }

    /// One read per wake-up once a channel carries large payloads, so that NIO's receive
    /// pool holds a single buffer (see `smallReadsWanted`); the reads are large (up to
    /// 1 MiB) outside the payloads, so this costs the user-space path nothing measurable,
    /// and connections of small requests never change.
    func readOnePerWakeUp(_ context: ChannelHandlerContext) {
        guard !onePerWakeUp else { return }
        onePerWakeUp = true
        try? context.channel.syncOptions?.setOption(.maxMessagesPerRead, value: 1)
    }

    /// A read larger than the small size while reads are small came from NIO's pooled
    /// buffer, which was not the one held: hold this one, so the next reads are small.
    func noteRead(_ buffer: ByteBuffer) {
        lastRead = buffer
        if readingSmall && buffer.capacity > Self.smallReads.capacity { heldBuffer = buffer }
    }

    /// Notes the length of each payload this direction framed: a stream of large ones
    /// (a copy, a migration) keeps NIO's reads small between them too, so that the next
    /// payload's header does not bring most of its data into user space with it.
    func notePayloads(_ events: [ConversationEvent]) {
        for e in events where e.direction == direction {
            if case .payload(_, let span) = e.kind {
                largePayloadsFlowing = span.length >= Self.kernelMinimum
                if largePayloadsFlowing, let context { readOnePerWakeUp(context) }
            } else if Self.startsMessage(e.kind) {
                // A message without a large payload after it: not a copy's stream (yet).
                largePayloadsFlowing = false
            }
        }
    }

    /// Transmission messages that may carry a payload after them.
    static func startsMessage(_ kind: ConversationEvent.Kind) -> Bool {
        switch kind {
        case .request, .simpleReply, .replyChunk: return true
        case .serverGreeting, .clientFlags, .option, .optionReply, .exportNameReply, .transmissionStarted, .payload,
             .completed, .tlsStarted, .opaque, .violation, .compliance, .gap, .skipped, .closed:
            return false
        }
    }
}
