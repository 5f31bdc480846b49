import NIOCore

/// Turns one fuzz input into two byte streams in arbitrary chunking, so one input covers
/// both directions of a conversation and every way a front end may split them.
/// Layout: byte 0 is a flags byte for the target; then records of one control byte
/// (bit 7: direction, server to client when set; bits 0-6: length 1-128) and that many bytes.
public struct Chunker {
    public var flags: UInt8 = 0
    public var records: [(toClient: Bool, bytes: ByteBuffer)] = []

    public init(_ data: UnsafeRawBufferPointer) {
        guard let first = data.first else { return }
        flags = first
        var i = 1
        while i < data.count {
            let control = data[i]
            i += 1
            let n = min(Int(control & 0x7f) + 1, data.count - i)
            guard n > 0 else { break }
            var b = ByteBufferAllocator().buffer(capacity: n)
            b.writeBytes(UnsafeRawBufferPointer(rebasing: data[i..<(i + n)]))
            records.append((control & 0x80 != 0, b))
            i += n
        }
    }
}

/// The input as a ByteBuffer.
public func buffer(_ data: UnsafeRawBufferPointer) -> ByteBuffer {
    var b = ByteBufferAllocator().buffer(capacity: data.count)
    b.writeBytes(data)
    return b
}
