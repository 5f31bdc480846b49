#if canImport(Glibc)
import Glibc
#endif

/// A pcap or pcapng **file** read by nbdtap itself, in place: the file is mapped (a window
/// at a time, `MappedFile`) and each frame handed out where it lies, so a front end that
/// only looks at headers never copies or even faults in the payload between them.
/// Pipes, FIFOs and live interfaces go through libpcap (`PcapSource`), which must read
/// them as streams; for regular files both give the same frames (`MappedCaptureTests`
/// compares them on every capture in Captures/).
///
/// Not thread-safe; one reader owns it.
public final class MappedCapture {
    private enum Format {
        case pcap(PcapRecords)
        case pcapng(PcapngBlocks)
    }

    private let file: MappedFile
    /// The stream the file was opened as, closed with the reader.
    private let stream: UnsafeMutablePointer<FILE>
    private var format: Format
    /// The link type of the first interface (pcapng frames carry their own).
    public let linkType: LinkType
    /// Snapshot length of the file (pcapng: of its first interface), as libpcap adjusts it.
    public let snapshotLength: Int
    public private(set) var status: PcapReadStatus = .reading
    /// Frames delivered so far.
    public private(set) var frameCount = 0

    /// Opens a regular file; the message says why not (as libpcap's would: "unknown file
    /// format", a damaged header).
    public convenience init(file path: String) throws(PcapError) {
        guard let stream = fopen(path, "rb") else { throw PcapError("\(path): \(String(cString: strerror(errno)))") }
        try self.init(stream: stream)
    }

    /// Reads the regular file behind `stream`, which the reader then owns (and closes,
    /// also when this fails). Where the stream stands does not matter.
    public init(stream: UnsafeMutablePointer<FILE>) throws(PcapError) {
        guard let file = MappedFile(descriptor: fileno(stream)) else {
            fclose(stream)
            throw PcapError("not a regular file")
        }
        self.file = file
        self.stream = stream
        do throws(PcapError) {
            guard let head = file.bytes(at: 0, count: 4) else { throw PcapError(file.size == 0 ? "empty input" : "unknown file format") }
            if PcapRecords.recognise(head.loadUnaligned(as: UInt32.self)) != nil {
                let records = try PcapRecords(file: file)
                format = .pcap(records)
                linkType = records.linkType
                snapshotLength = records.snapshot
            } else {
                let blocks = try PcapngBlocks(file: file)
                format = .pcapng(blocks)
                linkType = blocks.linkType
                snapshotLength = blocks.snapshot
            }
        } catch {
            fclose(stream)
            throw error
        }
    }

    deinit { fclose(stream) }

    /// The next frame, or nil at the end (then `status` says end of file or where the
    /// file is damaged). The frame's bytes are valid until the next call.
    public func next() -> MappedFrame? {
        guard status == .reading else { return nil }
        let outcome: RecordOutcome
        switch format {
        case .pcap(var records):
            outcome = records.next(in: file)
            format = .pcap(records)
        case .pcapng(var blocks):
            outcome = blocks.next(in: file)
            format = .pcapng(blocks)
        }
        // The guard's note is sticky, so this one look covers both the bytes of the last
        // frame (read by the caller after it was handed out) and this record's parse:
        // whatever came from a shrunk file was zeros, and reading ends here.
        if stopIfShrunk() { return nil }
        switch outcome {
        case .end:
            status = .endOfFile
            return nil
        case .damaged(let message):
            status = .error(message: message, frame: frameCount + 1)
            return nil
        case .frame(let timestamp, let originalLength, let linkType, let offset, let capturedLength):
            // The record was checked to lie inside the file, so this cannot fail unless the
            // file shrank under us; that is reported as damage, not trusted.
            guard let bytes = file.bytes(at: offset, count: capturedLength) else {
                status = .error(message: "the file ended at byte \(file.size) while it was read", frame: frameCount + 1)
                return nil
            }
            frameCount += 1
            return MappedFrame(frameNumber: frameCount, timestamp: timestamp, originalLength: originalLength,
                               linkType: linkType, bytes: bytes)
        }
    }

    /// Ends reading with a message when the file was found shrunk (`MappedFile.shrunk`):
    /// what was read from it since is zeros, not the file.
    private func stopIfShrunk() -> Bool {
        guard let offset = file.shrunk else { return false }
        status = .error(message: "the file shrank to \(file.available(from: 0)) bytes while it was read (byte \(offset) was gone)",
                        frame: frameCount + 1)
        return true
    }
}
