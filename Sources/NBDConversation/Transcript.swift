import NIOCore

/// A recorded conversation: the bytes of both directions in the order they became
/// deliverable, with capture times. The `.nbdt` format (written by
/// scripts/pcap-to-transcript.py from tcpdump captures) is `NBDT\x01`, then records of
/// direction (`C` or `S`), u64 microseconds, u32 length and the bytes, all big-endian.
public struct Transcript: Sendable {
    public struct Record: Sendable {
        public var direction: StreamDirection
        /// Nanoseconds since the epoch.
        public var time: UInt64
        public var bytes: ByteBuffer

        public init(direction: StreamDirection, time: UInt64, bytes: ByteBuffer) {
            self.direction = direction
            self.time = time
            self.bytes = bytes
        }
    }

    public var records: [Record] = []

    public init(records: [Record] = []) { self.records = records }

    public enum ParseError: Error, Equatable {
        case badHeader
        case badDirection(byte: UInt8, at: Int)
        case truncated(at: Int)
    }

    public init(parsing data: ByteBuffer) throws(ParseError) {
        var b = data
        guard b.readBytes(length: 5) == Array("NBDT".utf8) + [1] else { throw .badHeader }
        while b.readableBytes > 0 {
            let at = b.readerIndex
            let (d, time, length) = try Self.readRecordHeader(&b, at: at)
            guard let bytes = b.readSlice(length: length) else { throw .truncated(at: at) }
            records.append(Record(direction: d, time: time, bytes: bytes))
        }
    }

    /// Size of a record's header: direction, u64 microseconds, u32 length.
    public static let recordHeaderLength = 13

    /// Reads one record's header (the file offset `at` is for errors): its direction, its
    /// time in nanoseconds and the length of the bytes that follow.
    public static func readRecordHeader(_ b: inout ByteBuffer, at: Int) throws(ParseError) -> (StreamDirection, UInt64, Int) {
        guard let dir = b.readInteger(as: UInt8.self), let micros = b.readInteger(as: UInt64.self),
              let length = b.readInteger(as: UInt32.self) else { throw .truncated(at: at) }
        switch dir {
        case UInt8(ascii: "C"): return (.clientToServer, micros &* 1000, Int(length))
        case UInt8(ascii: "S"): return (.serverToClient, micros &* 1000, Int(length))
        default: throw .badDirection(byte: dir, at: at)
        }
    }

    /// All bytes of one direction, concatenated.
    public func stream(_ d: StreamDirection) -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: 0)
        for r in records where r.direction == d {
            var b = r.bytes
            out.writeBuffer(&b)
        }
        return out
    }

    public func serialized() -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: 0)
        out.writeBytes(Array("NBDT".utf8) + [1])
        for r in records {
            out.writeInteger(r.direction == .clientToServer ? UInt8(ascii: "C") : UInt8(ascii: "S"))
            out.writeInteger(r.time / 1000)
            out.writeInteger(UInt32(r.bytes.readableBytes))
            var b = r.bytes
            out.writeBuffer(&b)
        }
        return out
    }
}
