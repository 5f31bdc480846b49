import NIOCore

/// Bytes read from one side and not relayed yet, kept as the slices they arrived in (no
/// copies), addressed by stream offset.
struct StreamWindow {
    private var chunks: [ByteBuffer] = []
    /// Stream offset of the first byte held.
    private(set) var start: UInt64 = 0
    /// Bytes held (what a hold keeps in memory, bounded by the relay).
    private(set) var count = 0

    var end: UInt64 { start + UInt64(count) }

    mutating func append(_ b: ByteBuffer) {
        if b.readableBytes > 0 {
            chunks.append(b)
            count += b.readableBytes
        }
    }

    /// Removes the bytes [start, offset) and returns them as slices.
    mutating func take(upTo offset: UInt64) -> [ByteBuffer] {
        var out: [ByteBuffer] = []
        var want = offset > start ? offset - start : 0
        while want > 0, !chunks.isEmpty {
            var c = chunks[0]
            let n = Int(min(UInt64(c.readableBytes), want))
            out.append(c.readSlice(length: n)!)
            want -= UInt64(n)
            start += UInt64(n)
            count -= n
            if c.readableBytes == 0 { chunks.removeFirst() } else { chunks[0] = c }
        }
        return out
    }
}
