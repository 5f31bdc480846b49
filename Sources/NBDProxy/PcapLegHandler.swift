import NBDConversation
import NIOCore

/// Records one leg (the client's connection or the upstream one) as a TCP connection:
/// SYN, SYN-ACK, ACK when the channel becomes active, every byte read and written as data
/// packets with sequence and acknowledgement numbers that follow the bytes, and FIN, FIN-ACK,
/// ACK from the side that closed first. It sits first in the pipeline (after TLS, when
/// nbdtap terminates it), so it sees the bytes that crossed this leg, whatever the
/// policy layers made of them.
final class PcapLegHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    enum CloseState {
        case open
        case closedByNBDTap
        case closedByPeer
    }

    let batch: PcapBatch
    /// True on the client's leg, where nbdtap is the server.
    let nbdtapIsServer: Bool
    /// Addresses for Unix-socket legs (the socket's own addresses otherwise).
    let standIns: (client: SocketAddress, server: SocketAddress)
    /// How this leg records payloads, and (when either leg cuts them) where they are.
    let cut: PcapLegCut
    let cutter: PcapSnapCutter?
    var local: PcapEndpoint?
    var remote: PcapEndpoint?
    /// Next sequence numbers of the bytes nbdtap sends on this leg and of those it reads.
    var sentNext: UInt32 = 1
    var readNext: UInt32 = 1
    /// Stream offsets of what was recorded each way (for the cutter).
    var sentOffset: UInt64 = 0
    var readOffset: UInt64 = 0
    var closeState = CloseState.open
    var started = false

    init(batch: PcapBatch, nbdtapIsServer: Bool, standIns: (client: SocketAddress, server: SocketAddress),
         cut: PcapLegCut, cutter: PcapSnapCutter?) {
        self.batch = batch
        self.nbdtapIsServer = nbdtapIsServer
        self.standIns = standIns
        self.cut = cut
        self.cutter = cutter
    }

    /// The stream direction of the bytes nbdtap reads on this leg.
    var readDirection: StreamDirection { nbdtapIsServer ? .clientToServer : .serverToClient }
    var sentDirection: StreamDirection { nbdtapIsServer ? .serverToClient : .clientToServer }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    /// The three-way handshake, so tools see the connection open (and its direction).
    func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        let ch = context.channel
        if let l = ch.localAddress.flatMap(PcapEndpoint.init), let r = ch.remoteAddress.flatMap(PcapEndpoint.init), l.v6 == r.v6 {
            local = l
            remote = r
        } else {
            local = PcapEndpoint(nbdtapIsServer ? standIns.server : standIns.client)
            remote = PcapEndpoint(nbdtapIsServer ? standIns.client : standIns.server)
        }
        guard let local, let remote else { return }
        let (client, server) = nbdtapIsServer ? (remote, local) : (local, remote)
        let t = wallClockNanoseconds()
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        batch.append(from: client, to: server, seq: 0, ack: nil, flags: PcapBatch.syn, payload: none, captureLimit: nil, time: t)
        batch.append(from: server, to: client, seq: 0, ack: 1, flags: PcapBatch.syn, payload: none, captureLimit: nil, time: t)
        batch.append(from: client, to: server, seq: 1, ack: 1, flags: 0, payload: none, captureLimit: nil, time: t)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard cutter != nil else {
            recordRead(unwrapInboundIn(data))
            context.fireChannelRead(data)
            return
        }
        // Cutting: the decoder learns where this read's payloads are while the relay
        // handles it, so the read is recorded after that (the transparent relay never
        // answers on the channel it read from, so nothing it sends here can go first).
        let buffer = unwrapInboundIn(data)
        context.fireChannelRead(data)
        recordRead(buffer)
    }

    func recordRead(_ buffer: ByteBuffer) {
        guard closeState == .open, buffer.readableBytes > 0, let local, let remote else { return }
        record(buffer, from: remote, to: local, seq: &readNext, ack: sentNext, direction: readDirection, offset: &readOffset, leg: 0)
    }

    /// Bytes nbdtap sent on this leg: through this handler on NIO's path, by the direct
    /// loop's own send calls otherwise (RelayHandler+Direct.swift).
    func recordSent(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0, let local, let remote else { return }
        record(buffer, from: local, to: remote, seq: &sentNext, ack: readNext, direction: sentDirection, offset: &sentOffset, leg: 1)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .byteBuffer(let buffer):
            recordSent(buffer)
        case .fileRegion:
            // The relay writes only buffers; a file region's bytes are not in memory here.
            break
        }
        context.write(data, promise: promise)
    }

    /// Data packets for `buffer`: pieces of at most `maxSegment` bytes, and with a snapshot
    /// length, payloads in packets of their own cut at it and other bytes in packets
    /// small enough not to be cut; payloads recorded on the other leg in packets of their
    /// own cut after the TCP header.
    func record(_ buffer: ByteBuffer, from: PcapEndpoint, to: PcapEndpoint, seq: inout UInt32, ack: UInt32,
                direction: StreamDirection, offset: inout UInt64, leg: Int) {
        let t = wallClockNanoseconds()
        buffer.withUnsafeReadableBytes { bytes in
            func emit(_ start: Int, _ length: Int, maxPiece: Int, cut: Int?) {
                var at = start
                let end = start + length
                while at < end {
                    let n = min(maxPiece, end - at)
                    batch.append(from: from, to: to, seq: seq, ack: ack, flags: PcapBatch.psh,
                                 payload: UnsafeRawBufferPointer(rebasing: bytes[at..<(at + n)]), captureLimit: cut, time: t)
                    seq &+= UInt32(truncatingIfNeeded: n)
                    at += n
                }
            }
            switch (cut, cutter) {
            case (.whole, _), (_, nil):
                emit(0, bytes.count, maxPiece: PcapBatch.maxSegment, cut: nil)
            case (.snaplen(let snaplen), let cutter?):
                let whole = max(1, snaplen - PcapBatch.frameOverhead(v6: from.v6))
                cutter.forEachPiece(direction, offset: offset, count: bytes.count) { start, length, isPayload in
                    if isPayload {
                        emit(start, length, maxPiece: PcapBatch.maxSegment, cut: snaplen)
                    } else {
                        emit(start, length, maxPiece: whole, cut: nil)
                    }
                }
            case (.payloadsOnOtherLeg, let cutter?):
                let headers = PcapBatch.frameOverhead(v6: from.v6)
                cutter.forEachPiece(direction, offset: offset, count: bytes.count) { start, length, isPayload in
                    emit(start, length, maxPiece: PcapBatch.maxSegment, cut: isPayload ? headers : nil)
                }
            }
            passed(bytes.count, direction, offset: &offset, leg: leg)
        }
    }

    /// Tells the cutter this leg recorded `count` more bytes of `direction` (also when it
    /// records them whole), so spans both legs passed are dropped.
    private func passed(_ count: Int, _ direction: StreamDirection, offset: inout UInt64, leg: Int) {
        guard let cutter else { return }
        offset += UInt64(count)
        cutter.passed(direction, leg: leg, upTo: offset)
    }

    /// Payload bytes the kernel moved on this leg (read from its peer, or sent to it),
    /// which NIO never saw: packets of at most `maxSegment` bytes, whole with their payload
    /// spliced from `contents` when this leg records payloads whole, headers and lengths
    /// only when it cuts them. Returns how many bytes it took from `contents`.
    func recordMoved(_ count: Int, sent: Bool, contents: Int32?) -> Int {
        guard count > 0, closeState == .open, let local, let remote else { return 0 }
        let (from, to) = sent ? (local, remote) : (remote, local)
        let ack = sent ? readNext : sentNext
        var seq = sent ? sentNext : readNext
        let pipe = cut.isWhole ? contents : nil
        let t = wallClockNanoseconds()
        var at = 0
        while at < count {
            let n = min(PcapBatch.maxSegment, count - at)
            if let pipe {
                batch.appendFromPipe(from: from, to: to, seq: seq, ack: ack, count: n, pipe: pipe, time: t)
            } else {
                batch.appendUnrecorded(from: from, to: to, seq: seq, ack: ack, count: n, time: t)
            }
            seq &+= UInt32(truncatingIfNeeded: n)
            at += n
        }
        if sent {
            passed(count, sentDirection, offset: &sentOffset, leg: 1)
            sentNext = seq
        } else {
            passed(count, readDirection, offset: &readOffset, leg: 0)
            readNext = seq
        }
        return pipe == nil ? 0 : count
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed, closeState == .open { closeState = .closedByPeer }
        context.fireUserInboundEventTriggered(event)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if closeState == .open { closeState = .closedByNBDTap }
        context.close(mode: mode, promise: promise)
    }

    /// FIN from the side that closed first, FIN-ACK, ACK: tools see the connection end.
    func channelInactive(context: ChannelHandlerContext) {
        if let local, let remote {
            let byUs: Bool
            switch closeState {
            case .closedByNBDTap: byUs = true
            case .closedByPeer, .open: byUs = false
            }
            let (a, b) = byUs ? (local, remote) : (remote, local)
            let (aSeq, bSeq) = byUs ? (sentNext, readNext) : (readNext, sentNext)
            let t = wallClockNanoseconds()
            let none = UnsafeRawBufferPointer(start: nil, count: 0)
            batch.append(from: a, to: b, seq: aSeq, ack: bSeq, flags: PcapBatch.fin, payload: none, captureLimit: nil, time: t)
            batch.append(from: b, to: a, seq: bSeq, ack: aSeq &+ 1, flags: PcapBatch.fin, payload: none, captureLimit: nil, time: t)
            batch.append(from: a, to: b, seq: aSeq &+ 1, ack: bSeq &+ 1, flags: 0, payload: none, captureLimit: nil, time: t)
            self.local = nil
        }
        context.fireChannelInactive()
    }
}
