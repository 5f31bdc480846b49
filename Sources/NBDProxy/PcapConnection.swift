import NBDConversation
import NIOCore

/// One connection's recording: the handlers for its two legs, and what the kernel path
/// tells of the payload bytes it moved past them.
final class PcapConnection: SpliceRecording {
    let id: Int
    let batch: PcapBatch
    let client: PcapLegCut
    let upstream: PcapLegCut
    let cutter: PcapSnapCutter?
    private(set) var clientLeg: PcapLegHandler?
    private(set) var upstreamLeg: PcapLegHandler?

    init(id: Int, batch: PcapBatch, client: PcapLegCut, upstream: PcapLegCut, cutter: PcapSnapCutter?) {
        self.id = id
        self.batch = batch
        self.client = client
        self.upstream = upstream
        self.cutter = cutter
    }

    /// The handler for the client's channel (nbdtap is the server there).
    func clientLegHandler() -> PcapLegHandler {
        let h = PcapLegHandler(batch: batch, nbdtapIsServer: true, standIns: PcapRecorder.standIns(leg: 1, connection: id),
                               cut: client, cutter: cutter)
        clientLeg = h
        return h
    }

    /// The handler for the upstream channel (nbdtap is the client there).
    func upstreamLegHandler() -> PcapLegHandler {
        let h = PcapLegHandler(batch: batch, nbdtapIsServer: false, standIns: PcapRecorder.standIns(leg: 2, connection: id),
                               cut: upstream, cutter: cutter)
        upstreamLeg = h
        return h
    }

    /// Whether the kernel path may move this connection's payloads: at most one leg
    /// records their bytes (one copy pipe), and it only into a file that takes splices or
    /// copies (always). With both legs whole (`--pcap-payloads both`), it may not.
    var allowsKernelPath: Bool { !(client.isWhole && upstream.isWhole) }

    var wantsContents: Bool { client.isWhole || upstream.isWhole }

    /// The legs a direction's bytes are read from and written to.
    func legs(_ d: StreamDirection) -> (source: PcapLegHandler?, destination: PcapLegHandler?) {
        switch d {
        case .clientToServer: return (clientLeg, upstreamLeg)
        case .serverToClient: return (upstreamLeg, clientLeg)
        }
    }

    func moved(_ d: StreamDirection, taken: Int, delivered: Int, contents: Int32?) {
        let (source, destination) = legs(d)
        var left = taken
        if let source { left -= source.recordMoved(taken, sent: false, contents: left == taken ? contents : nil) }
        if let destination { left -= destination.recordMoved(delivered, sent: true, contents: left == taken ? contents : nil) }
        // What no leg took from the copy (the part the destination did not take, or a leg
        // that is gone) leaves it, so it is empty for the next pipeful.
        if let contents, left > 0 { batch.file.discard(fromPipe: contents, count: left) }
    }

    func read(_ d: StreamDirection, _ bytes: ByteBuffer) {
        legs(d).source?.recordRead(bytes)
    }
}
