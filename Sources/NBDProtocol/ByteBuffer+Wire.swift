import NIOCore

extension ByteBuffer {
    /// Reads a u32-length-prefixed string (export names, meta context queries).
    /// Names are UTF-8 by spec; invalid bytes are replaced rather than dropped.
    @inlinable
    mutating func readLengthPrefixedString(context: String) throws(WireError) -> String {
        guard let length = readInteger(as: UInt32.self) else {
            throw .truncated(context: context, needed: 4, available: readableBytes)
        }
        guard Int(length) <= readableBytes else {
            throw .truncated(context: context, needed: Int(length), available: readableBytes)
        }
        return readRemainingString(count: Int(length))
    }

    /// Reads `count` bytes as UTF-8 with replacement characters for invalid sequences.
    @inlinable
    mutating func readRemainingString(count: Int) -> String {
        let slice = readSlice(length: count)!
        return String(decoding: slice.readableBytesView, as: UTF8.self)
    }

    @inlinable
    mutating func writeLengthPrefixedString(_ s: String) {
        writeInteger(UInt32(s.utf8.count))
        writeString(s)
    }

    @inlinable
    func requireLength(_ n: Int, context: String) throws(WireError) {
        guard readableBytes == n else {
            throw .badLength(context: context, length: UInt64(readableBytes), expected: "\(n)")
        }
    }
}
