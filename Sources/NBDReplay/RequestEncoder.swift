import NBDConversation
import NBDProtocol
import NIOCore

/// Turns a recorded request into the bytes the replay sends, in the framing the replay
/// negotiated (which may differ from the recording's: compact against extended headers,
/// other meta context ids), or says why it cannot be sent.
public enum RequestEncoder {
    public enum Result {
        case send(header: ByteBuffer, payload: ByteBuffer?)
        case skip(String)
    }

    /// `fill`: the pattern for WRITE data missing from the capture (`--fill-missing`);
    /// nil skips such writes.
    public static func encode(_ r: RecordedRequest, cookie: UInt64, info: TransmissionInfo, fill: [UInt8]?,
                              allocator: ByteBufferAllocator = ByteBufferAllocator()) -> Result {
        var header = r.header
        header.cookie = cookie
        header.extended = info.extendedHeaders
        var payload: ByteBuffer?
        switch r.header.command {
        case .write:
            var data = r.payload ?? allocator.buffer(capacity: 0)
            if r.payload == nil && r.header.length > WorkloadExtractor.maxWritePayload {
                return .skip("its \(r.header.length) data bytes are more than the \(WorkloadExtractor.maxWritePayload) a replay holds")
            }
            if !r.missing.isEmpty {
                guard let fill, !fill.isEmpty else {
                    return .skip("\(r.missingBytes) of its \(r.header.length) data bytes are not in the capture (--fill-missing PATTERN sends a pattern instead)")
                }
                if r.payload == nil {
                    data = allocator.buffer(capacity: Int(r.header.length))
                    data.writeRepeatingByte(0, count: Int(r.header.length))
                }
                fillPattern(&data, r.missing, fill)
            }
            payload = data
            header.length = UInt64(data.readableBytes)
            if info.extendedHeaders {
                // As recorded when the recording was extended too; otherwise as the spec asks.
                if !r.header.extended { header.flags.insert(.payloadLen) }
            } else {
                header.flags.remove(.payloadLen)
            }
        case .blockStatus:
            guard info.structuredReplies || info.extendedHeaders else {
                return .skip("NBD_CMD_BLOCK_STATUS needs structured replies, which the upstream did not agree to")
            }
            header.length = r.effectLength
            header.flags.remove(.payloadLen)
            if info.extendedHeaders, let names = r.contextFilter, info.flags.contains(.blockStatusPayload) {
                let ids = Dictionary(info.metaContexts.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
                let wanted = names.compactMap { ids[$0] }
                if !wanted.isEmpty {
                    var p = allocator.buffer(capacity: 8 + 4 * wanted.count)
                    p.writeInteger(r.effectLength)
                    for id in wanted { p.writeInteger(id) }
                    header.flags.insert(.payloadLen)
                    header.length = UInt64(p.readableBytes)
                    payload = p
                }
            }
        case .read, .disc, .flush, .trim, .cache, .writeZeroes, .resize, .unknown:
            header.length = r.effectLength
            if !info.extendedHeaders { header.flags.remove(.payloadLen) }
        }
        if !info.extendedHeaders && header.length > UInt64(UInt32.max) {
            return .skip("its length \(header.length) does not fit a compact request header (the upstream did not agree to extended headers)")
        }
        var bytes = allocator.buffer(capacity: header.wireLength)
        header.write(to: &bytes)
        return .send(header: bytes, payload: payload)
    }

    /// Writes the pattern over the missing ranges, byte i of the data getting
    /// `fill[i % fill.count]`, a tile at a time (a missing range can be 64 MiB).
    static func fillPattern(_ data: inout ByteBuffer, _ missing: [Range<UInt64>], _ fill: [UInt8]) {
        let n = fill.count
        let tile = (0..<(n + 4096)).map { fill[$0 % n] }
        data.withUnsafeMutableReadableBytes { raw in
            tile.withUnsafeBytes { t in
                for range in missing {
                    var i = Int(range.lowerBound)
                    let end = min(Int(range.upperBound), raw.count)
                    while i < end {
                        let phase = i % n
                        let len = min(4096, end - i)
                        raw.baseAddress!.advanced(by: i).copyMemory(from: t.baseAddress!.advanced(by: phase), byteCount: len)
                        i += len
                    }
                }
            }
        }
    }
}
