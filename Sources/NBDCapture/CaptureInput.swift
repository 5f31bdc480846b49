import CPcap
import NBDConversation
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// One input of `nbdtap decode`, opened exactly once, so pipes, process substitution
/// (`<(...)`), /dev/stdin and named FIFOs read like files: the first bytes are read to
/// tell a `.nbdt` transcript from a pcap or pcapng file and pushed back into the stream
/// (glibc keeps any number of pushed-back bytes), and libpcap then reads the same stream.
///
/// A regular file is read by nbdtap's own reader (`MappedCapture`, in place), anything
/// else by libpcap; `NBDTAP_CAPTURE_READER=libpcap` makes libpcap read files too (to
/// compare the two, as the tests and bench/run do).
public enum CaptureInput {
    case pcap(CaptureSource)
    case transcript(TranscriptStream)

    /// Which reader takes pcap and pcapng files.
    public enum Reader: Sendable {
        case mapped, libpcap

        /// `NBDTAP_CAPTURE_READER=libpcap` chooses libpcap, anything else nbdtap's own.
        public static var preferred: Reader {
            getenv("NBDTAP_CAPTURE_READER").map { String(cString: $0) } == "libpcap" ? .libpcap : .mapped
        }
    }

    /// Why an input could not be opened, with the path and the system's reason.
    public struct OpenError: Error, CustomStringConvertible, Equatable {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    public static func open(_ path: String, reader: Reader = .preferred) throws(OpenError) -> CaptureInput {
        guard let file = fopen(path, "rb") else { throw OpenError(path: path, reason: String(cString: strerror(errno))) }
        var st = stat()
        let known = fstat(fileno(file), &st) == 0
        if known && (st.st_mode & S_IFMT) == S_IFDIR {
            fclose(file)
            throw OpenError(path: path, reason: "is a directory")
        }
        var head = [UInt8](repeating: 0, count: 5)
        let n = fread(&head, 1, 5, file)
        if n < 5 && ferror(file) != 0 {
            let reason = String(cString: strerror(errno))
            fclose(file)
            throw OpenError(path: path, reason: "cannot read: \(reason)")
        }
        if n == 5 && head == Array("NBDT".utf8) + [1] {
            return .transcript(TranscriptStream(file: file))
        }
        if known && (st.st_mode & S_IFMT) == S_IFREG && reader == .mapped {
            do {
                return .pcap(.mapped(try MappedCapture(stream: file)))
            } catch {
                throw OpenError(path: path, reason: n == 0 ? "empty input" : error.message)
            }
        }
        for byte in head[0..<n].reversed() where ungetc(Int32(byte), file) == EOF {
            fclose(file)
            throw OpenError(path: path, reason: "cannot push back the bytes read to tell its format")
        }
        do {
            return .pcap(.libpcap(try PcapSource(stream: file)))
        } catch {
            throw OpenError(path: path, reason: n == 0 ? "empty input" : ((error as? PcapError)?.message ?? "\(error)"))
        }
    }
}

/// A `.nbdt` transcript read record by record from a stream (after its 5-byte header), so
/// memory is one record, not the file; a record over `maxRecordLength` is an error.
public final class TranscriptStream {
    private let file: UnsafeMutablePointer<FILE>
    /// Offset of the next record in the file, for error messages.
    public private(set) var offset = 5
    public static let maxRecordLength = 64 << 20
    private let allocator = ByteBufferAllocator()

    init(file: UnsafeMutablePointer<FILE>) { self.file = file }

    deinit { fclose(file) }

    /// The next record, nil at a clean end of the file.
    public func next() throws(Transcript.ParseError) -> Transcript.Record? {
        let headerLength = Transcript.recordHeaderLength
        var header = allocator.buffer(capacity: headerLength)
        let n = header.writeWithUnsafeMutableBytes(minimumWritableBytes: headerLength) { fread($0.baseAddress, 1, headerLength, file) }
        if n == 0 && feof(file) != 0 { return nil }
        guard n == headerLength else { throw .truncated(at: offset) }
        let (dir, time, length) = try Transcript.readRecordHeader(&header, at: offset)
        guard length <= Self.maxRecordLength else { throw .truncated(at: offset) }
        var bytes = allocator.buffer(capacity: length)
        let got = bytes.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { fread($0.baseAddress, 1, length, file) }
        guard got == length else { throw .truncated(at: offset) }
        let record = Transcript.Record(direction: dir, time: time, bytes: bytes)
        offset += headerLength + length
        return record
    }
}
