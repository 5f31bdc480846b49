#if canImport(Glibc)
import Glibc
#endif
import NBDConversation
import NIOCore

/// The direct loop: after NIO delivered a read, the relay keeps both sockets for itself
/// for a while, reading and writing them with plain system calls, instead of going back
/// to NIO's epoll for every message.
///
/// Why: with small requests (4 KiB random I/O at queue depths 2 to 32) NIO's machinery per
/// read (epoll_wait, the pipeline, the pending-writes queue, the flush) cost the proxy
/// 17-21 us of CPU per request with decoding off, against 8.7 us for a C relay doing
/// poll, read and write on the same machine; on 2 cores that CPU is taken from the client
/// and the server, so it bounds the ratio to a direct connection.
///
/// What stays the same: every byte read here is shown to the same decoder (`observe`)
/// before it is written, in the order read, so the log and statistics are those of the
/// NIO path. Everything that is not a plain relay of available bytes goes back to NIO:
/// a destination that does not take everything (the rest is written through NIO, whose
/// queue and watermarks are the backpressure), EOF and errors (the next NIO read sees
/// them again and handles them as before), and a shutdown or close. Large payloads are
/// spliced here as on NIO's path (the kernel path, RelayHandler+Kernel.swift).
///
/// Where: only where nothing else needs the bytes (no layers or TLS termination, no
/// `--rate`; `--pcap`'s legs are told of what the loop relays), and only while NIO holds
/// nothing queued for either socket (writing past its queue would reorder the stream).
extension RelayHandler {
    /// Bytes one read takes at most: several small messages, or a 4 KiB WRITE and more.
    static let directReadSize = 128 * 1024
    /// The loop hands the thread back to NIO after this long at most, so that the other
    /// connections on this event loop, its timers and tasks wait no longer than that.
    static let directBudgetNanoseconds: UInt64 = 1_000_000

    var directLoopApplies: Bool {
        session.direct && session.engine == nil && session.shaper == nil && !session.draining && !session.closing
            && session.clientDescriptor >= 0 && session.upstreamDescriptor >= 0
    }

    /// Schedules the loop when it applies; returns whether it did (the caller then skips
    /// the idle poller, which the loop includes).
    ///
    /// The loop runs as a task, after NIO has handled every event of this epoll_wait: run
    /// inside one channel's event, it could empty the other socket that NIO was about to
    /// read for an event of the same batch (a read that finds nothing, which NIO treats as
    /// a broken promise of epoll). Events of the next epoll_wait come after the loop.
    func scheduleDirectLoop(_ context: ChannelHandlerContext) -> Bool {
        guard directLoopApplies else { return false }
        // Large payloads without a spin (more connections than polling slots): the loop
        // would find nothing more after the kernel path's splice but pay its polls for
        // it (nbdcopy writing over 4 connections: 0.71 of direct with it, 0.78 without).
        if largePayloadsFlowing || partner?.largePayloadsFlowing == true,
           !(session.poller?.mightSpin ?? false) || !session.pollState.quick { return false }
        guard !session.directScheduled else { return true }
        session.directScheduled = true
        context.eventLoop.execute { [weak self] in
            guard let self else { return }
            self.session.directScheduled = false
            self.runDirectLoop()
        }
        return true
    }

    func runDirectLoop() {
        guard directLoopApplies, let context, let other = partner, let p = other.context,
              Self.nothingQueued(p), Self.nothingQueued(context) else { return }
        let (fromClient, fromServer) = direction == .clientToServer ? (self, other) : (other, self)
        var loop = DirectLoop(session: session, allocator: context.channel.allocator)
        loop.run(fromClient: fromClient, fromServer: fromServer)
        // A side whose partner filled up waits for writability as on NIO's path.
        resume()
        other.resume()
    }

    static func nothingQueued(_ c: ChannelHandlerContext) -> Bool {
        ((try? c.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 1) == 0
    }
}

/// One run of the direct loop (see RelayHandler+Direct above).
struct DirectLoop {
    let session: ProxySession
    let allocator: ByteBufferAllocator

    /// Why the loop handed the sockets back to NIO.
    enum Stop {
        /// Neither socket had input within the spin window (or at once, without one).
        case quiet
        /// The loop ran its budget.
        case budget
        /// A destination took part of a read; NIO writes the rest.
        case handedOff
        /// EOF or an error on a source: NIO's next read sees it and handles it.
        case sourceEnded
        /// The decoder closed the connection, or a shutdown began.
        case closing
    }

    init(session: ProxySession, allocator: ByteBufferAllocator) {
        self.session = session
        self.allocator = allocator
    }

    @discardableResult
    mutating func run(fromClient: RelayHandler, fromServer: RelayHandler) -> Stop {
        let spinner = session.poller.flatMap { $0.claim() ? $0 : nil }
        defer { spinner?.release() }
        let window = spinner.map { session.pollState.quick ? $0.windowNanoseconds : 0 } ?? 0
        var buffer = session.directBuffer ?? allocator.buffer(capacity: RelayHandler.directReadSize)
        defer { session.directBuffer = buffer }
        // A side that reached EOF stays readable for ever: it is NIO's now, not polled
        // here (poll skips negative descriptors).
        var fds = (pollfd(fd: session.tap.decoder.isFinished(.clientToServer) ? -1 : session.clientDescriptor, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: session.tap.decoder.isFinished(.serverToClient) ? -1 : session.upstreamDescriptor, events: Int16(POLLIN), revents: 0))
        let start = monotonicNanoseconds()
        var lastInput = start
        var yielded = false
        while true {
            let ready = withUnsafeMutableBytes(of: &fds) { raw in
                poll(raw.baseAddress!.assumingMemoryBound(to: pollfd.self), 2, 0)
            }
            if ready > 0 {
                if yielded { session.poller?.arrivals.add(1, ordering: .relaxed) }
                yielded = false
                if fds.0.revents != 0, let stop = relay(from: fromClient, to: fromServer, buffer: &buffer) { return stop }
                if fds.1.revents != 0, let stop = relay(from: fromServer, to: fromClient, buffer: &buffer) { return stop }
                let now = monotonicNanoseconds()
                lastInput = now
                if now &- start > RelayHandler.directBudgetNanoseconds { return .budget }
                continue
            }
            if ready < 0 && errno != EINTR { return .sourceEnded }
            if monotonicNanoseconds() &- lastInput >= window {
                if window > 0 {
                    // The peers were slower than the window: stop spinning until a quick
                    // answer again (IdlePollState), as the idle poller does.
                    session.pollState.quick = false
                    session.poller?.timeouts.add(1, ordering: .relaxed)
                }
                session.pollState.sleptAt = monotonicNanoseconds()
                return .quiet
            }
            // The spin only uses a core no one else wants (IdlePoller says why).
            sched_yield()
            yielded = true
        }
    }

    /// Reads what `source`'s socket has, shows it to the decoder and writes it to the
    /// destination's socket. Returns why the loop must stop, or nil to go on.
    mutating func relay(from source: RelayHandler, to destination: RelayHandler, buffer: inout ByteBuffer) -> DirectLoop.Stop? {
        let d = source.direction
        let (src, dst) = d == .clientToServer
            ? (session.clientDescriptor, session.upstreamDescriptor)
            : (session.upstreamDescriptor, session.clientDescriptor)
        if let stop = splicePayload(d, src, dst, destination) { return stop == .quiet ? nil : stop }
        // While large payloads flow in this direction, a read takes a header or two, not
        // the data after it (the kernel path's small reads, RelayHandler+Kernel.swift).
        let size = session.splicing && source.largePayloadsFlowing ? RelayHandler.smallReads.capacity : RelayHandler.directReadSize
        buffer.clear()
        var failed: Int32 = 0
        let n = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: RelayHandler.directReadSize) { raw -> Int in
            let r = read(src, raw.baseAddress, min(raw.count, size))
            if r < 0 { failed = errno }
            return max(0, r)
        }
        guard n > 0 else {
            if failed == EAGAIN || failed == EWOULDBLOCK || failed == EINTR { return nil }
            return .sourceEnded
        }
        session.lastActivity = monotonicNanoseconds()
        session.pollState.input(window: session.poller?.windowNanoseconds ?? 0)
        guard session.observe(d, buffer) else {
            source.broken = true
            return .closing
        }
        session.directBytes?.add(UInt64(n))
        // `--pcap`: the legs record what the loop relays, as their handlers do on NIO's path.
        let legs = session.recording?.legs(d)
        legs?.source?.recordRead(buffer)
        var written = 0
        while written < n {
            let w = buffer.withUnsafeReadableBytes { raw in
                // MSG_NOSIGNAL: a peer that closed gives EPIPE here, for NIO's write to
                // report, not a signal that ends the proxy.
                send(dst, raw.baseAddress! + written, raw.count - written, Int32(MSG_NOSIGNAL))
            }
            if w > 0 { written += w; continue }
            if w < 0 && errno == EINTR { continue }
            break
        }
        if written > 0, let out = legs?.destination { out.recordSent(buffer.getSlice(at: buffer.readerIndex, length: written)!) }
        if written < n {
            // Full (or failing) destination: NIO writes the rest, and reports a failure
            // through its own write as it does on its path.
            let rest = buffer.getSlice(at: buffer.readerIndex + written, length: n - written)!
            buffer = allocator.buffer(capacity: RelayHandler.directReadSize)
            destination.context?.writeAndFlush(destination.wrapOutboundOut(rest), promise: nil)
            return .handedOff
        }
        if session.closing || session.draining { return .closing }
        if session.splicing {
            source.notePayloads(session.tap.events)
            // The payload's data is likely there already: move it now.
            if let stop = splicePayload(d, src, dst, destination), stop != .quiet { return stop }
        }
        return nil
    }

    /// The kernel path inside the loop: when a large payload is ahead in direction `d`,
    /// splices what the source has of it. Returns nil when no payload was ahead, `.quiet`
    /// when it moved what there was (the loop goes on), or why the loop must stop.
    mutating func splicePayload(_ d: StreamDirection, _ src: Int32, _ dst: Int32, _ destination: RelayHandler) -> DirectLoop.Stop? {
        guard session.splicing else { return nil }
        let ahead = session.spliceLimit(session.tap.decoder.payloadAhead(d))
        guard ahead >= RelayHandler.kernelMinimum, let splicer = session.payloadSplicer() else { return nil }
        let moved = splicer.move(from: src, to: dst, limit: ahead, direction: d, recording: session.recording, allocator: allocator)
        guard session.account(moved, d) else { return .closing }
        if let rest = moved.leftover, rest.readableBytes > 0 {
            destination.context?.writeAndFlush(destination.wrapOutboundOut(rest), promise: nil)
            return .handedOff
        }
        return .quiet
    }
}
