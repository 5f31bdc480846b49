import NBDConversation
import NIOCore

/// Maps the chunks of one direction's stream onto the payload spans the decoder announced,
/// so each span's bytes can be taken (or found missing) as they pass, in any chunking.
/// Spans of one direction follow each other and do not overlap, so only a few are open.
struct PayloadSlicer<Tag> {
    private(set) var open: [(span: StreamSpan, tag: Tag)] = []

    mutating func add(_ span: StreamSpan, _ tag: Tag) {
        if span.length > 0 { open.append((span, tag)) }
    }

    /// Calls `body` with each open span's part of `bytes` (which start at stream offset
    /// `at`): the span's tag, the part's position inside the span, the part. Spans that end
    /// are closed.
    mutating func slice(_ bytes: ByteBuffer, at offset: UInt64, _ body: (Tag, UInt64, ByteBuffer) -> Void) {
        guard !open.isEmpty else { return }
        let end = offset + UInt64(bytes.readableBytes)
        for (span, tag) in open {
            let from = max(span.offset, offset)
            let to = min(span.end, end)
            guard from < to else { continue }
            let part = bytes.getSlice(at: bytes.readerIndex + Int(from - offset), length: Int(to - from))!
            body(tag, from - span.offset, part)
        }
        open.removeAll { $0.span.end <= end }
    }

    /// Like `slice` for `length` bytes missing from the capture at `offset`.
    mutating func missing(at offset: UInt64, length: UInt64, _ body: (Tag, UInt64, UInt64) -> Void) {
        let (sum, overflow) = offset.addingReportingOverflow(length)
        let end = overflow ? UInt64.max : sum
        for (span, tag) in open {
            let from = max(span.offset, offset)
            let to = min(span.end, end)
            guard from < to else { continue }
            body(tag, from - span.offset, to - from)
        }
        open.removeAll { $0.span.end <= end }
    }

    /// The stream ended: the tags of the spans it left incomplete.
    mutating func close(_ body: (Tag) -> Void) {
        for (_, tag) in open { body(tag) }
        open.removeAll()
    }
}
