import NIOCore

/// The capture front end in one piece: frames from a `PcapSource`, parsed and
/// reassembled by a `TCPReassembler`, handed out as events frame by frame so a caller
/// (nbdtap decode) can feed each connection's conversation decoder as it goes, with
/// memory bounded by the reassembler's hold limit, not by the capture.
public final class CaptureReader {
    public let source: PcapSource
    public let reassembler: TCPReassembler
    private var finished = false
    private var lastFrame = 0
    private var lastTime: UInt64 = 0

    public init(source: PcapSource, configuration: TCPReassembler.Configuration = .init()) {
        self.source = source
        self.reassembler = TCPReassembler(configuration: configuration)
    }

    /// Open a pcap/pcapng file (see `PcapSource.init(file:)`).
    public convenience init(file path: String, configuration: TCPReassembler.Configuration = .init()) throws {
        self.init(source: try PcapSource(file: path), configuration: configuration)
    }

    /// Read one frame and append the events it causes (often none). At the end of the
    /// input (file end, read error or stop) appends the final flush (`finish`) and
    /// returns false; then `status` tells whether the input ended cleanly.
    public func step(into events: inout [CaptureEvent]) -> Bool {
        guard !finished else { return false }
        if let packet = source.next() {
            lastFrame = packet.frameNumber
            lastTime = packet.timestamp
            reassembler.process(packet, linkType: source.linkType, into: &events)
            return true
        }
        finished = true
        reassembler.finish(frame: lastFrame, time: lastTime, into: &events)
        return false
    }

    /// Read everything, calling `body` with each event in order.
    public func forEachEvent(_ body: (CaptureEvent) throws -> Void) rethrows {
        var events: [CaptureEvent] = []
        while true {
            let more = step(into: &events)
            for e in events { try body(e) }
            events.removeAll(keepingCapacity: true)
            if !more { break }
        }
    }

    public var status: PcapReadStatus { source.status }
    public var counters: CaptureCounters { reassembler.counters }
}
