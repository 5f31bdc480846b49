import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Where a capture's frames come from: libpcap (live interfaces, pipes, FIFOs, and files
/// when asked for) or nbdtap's own reader of mapped files.
public enum CaptureSource {
    case libpcap(PcapSource)
    case mapped(MappedCapture)

    public var status: PcapReadStatus {
        switch self {
        case .libpcap(let s): return s.status
        case .mapped(let m): return m.status
        }
    }
}

/// The capture front end in one piece: frames from a `CaptureSource`, parsed and
/// reassembled by a `TCPReassembler`, handed out as events frame by frame so a caller
/// (nbdtap decode) can feed each connection's conversation decoder as it goes, with
/// memory bounded by the reassembler's hold limit, not by the capture.
///
/// `step(into:)` copies every segment's payload into the events (what a caller that wants
/// the bytes needs); `step(sessions:out:)` decodes one frame into `CaptureSessions` and,
/// for a mapped file, reads it in place (`CaptureReader+InPlace.swift`).
public final class CaptureReader {
    public let source: CaptureSource
    public let reassembler: TCPReassembler
    private var finished = false
    var lastFrame = 0
    var lastTime: UInt64 = 0
    let allocator = ByteBufferAllocator()
    /// Events of one step, reused.
    var pending: [CaptureEvent] = []
    /// Payload bytes `step(sessions:out:)` passed over by count instead of copying.
    public internal(set) var bytesPassed: UInt64 = 0

    public init(source: CaptureSource, configuration: TCPReassembler.Configuration = .init()) {
        self.source = source
        self.reassembler = TCPReassembler(configuration: configuration)
    }

    public convenience init(source: PcapSource, configuration: TCPReassembler.Configuration = .init()) {
        self.init(source: .libpcap(source), configuration: configuration)
    }

    /// Open a pcap/pcapng file, with the reader `CaptureInput.Reader.preferred` names
    /// (nbdtap's own unless `NBDTAP_CAPTURE_READER=libpcap`); what is not a regular file
    /// (a FIFO, a device) goes to libpcap whatever the choice.
    public convenience init(file path: String, configuration: TCPReassembler.Configuration = .init(),
                            reader: CaptureInput.Reader = .preferred) throws {
        var st = stat()
        if reader == .mapped, stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG {
            self.init(source: .mapped(try MappedCapture(file: path)), configuration: configuration)
        } else {
            self.init(source: .libpcap(try PcapSource(file: path)), configuration: configuration)
        }
    }

    /// Read one frame and append the events it causes (often none). At the end of the
    /// input (file end, read error or stop) appends the final flush (`finish`) and
    /// returns false; then `status` tells whether the input ended cleanly.
    public func step(into events: inout [CaptureEvent]) -> Bool {
        guard !finished else { return false }
        switch source {
        case .libpcap(let s):
            if let packet = s.next() {
                lastFrame = packet.frameNumber
                lastTime = packet.timestamp
                reassembler.process(packet, linkType: s.linkType, into: &events)
                return true
            }
        case .mapped(let m):
            if let frame = m.next() {
                lastFrame = frame.frameNumber
                lastTime = frame.timestamp
                var bytes = allocator.buffer(capacity: frame.capturedLength)
                bytes.writeBytes(frame.bytes)
                let packet = Packet(frameNumber: frame.frameNumber, timestamp: frame.timestamp,
                                    capturedLength: frame.capturedLength, originalLength: frame.originalLength, bytes: bytes)
                reassembler.process(packet, linkType: frame.linkType, into: &events)
                return true
            }
        }
        finished = true
        reassembler.finish(frame: lastFrame, time: lastTime, into: &events)
        return false
    }

    /// Read one frame and decode what it carries into `sessions` (log text to `out`), as
    /// `step(into:)` followed by `sessions.handle` of each event would; a mapped file's
    /// payload that the decoders skip is passed over by count, not copied. False at the
    /// end of the input, as `step(into:)`.
    public func step(sessions: CaptureSessions, out: inout [UInt8]) -> Bool {
        if case .mapped(let m) = source, !finished, let frame = m.next() {
            lastFrame = frame.frameNumber
            lastTime = frame.timestamp
            decodeInPlace(frame, sessions: sessions, out: &out)
            return true
        }
        let more = step(into: &pending)
        for e in pending { sessions.handle(e, reader: reassembler, out: &out) }
        pending.removeAll(keepingCapacity: true)
        return more
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
