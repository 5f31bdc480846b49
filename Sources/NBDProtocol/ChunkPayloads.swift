import NIOCore

/// One extent of a block status reply. Compact chunks carry 32-bit fields, extended
/// chunks 64-bit ones; both are held as 64-bit here.
public struct BlockDescriptor: Hashable, Sendable {
    public var length: UInt64
    public var status: UInt64
    public init(length: UInt64, status: UInt64) {
        self.length = length
        self.status = status
    }
}

/// base:allocation status bits.
public enum BaseAllocation {
    public static let hole: UInt64 = 1 << 0
    public static let zero: UInt64 = 1 << 1
}

/// The payload of a reply chunk that nbdtap interprets. OFFSET_DATA's data is not part of
/// it: only the offset is parsed and the data travels as a span.
public enum ChunkPayload: Hashable, Sendable {
    case none
    /// OFFSET_DATA: the offset; `dataLength` bytes of data follow it.
    case offsetData(offset: UInt64, dataLength: UInt64)
    case offsetHole(offset: UInt64, length: UInt32)
    case blockStatus(contextID: UInt32, descriptors: [BlockDescriptor])
    case blockStatusExt(contextID: UInt32, descriptors: [BlockDescriptor])
    case error(error: ErrorValue, message: String)
    case errorOffset(error: ErrorValue, message: String, offset: UInt64)
    /// A chunk type nbdtap does not know: only its length.
    case unknown(length: UInt64)

    /// Bytes of OFFSET_DATA's fixed part, before the data.
    public static let offsetDataPrefix = 8

    /// The largest error message the spec allows.
    public static let maxErrorMessage = 4096

    /// Parses a whole chunk payload (for OFFSET_DATA, just its 8-byte prefix plus the
    /// declared total length, since the data itself is never buffered).
    public static func parse(type: ReplyChunkType, payload: ByteBuffer, totalLength: UInt64) throws(WireError) -> ChunkPayload {
        var p = payload
        switch type {
        case .none:
            guard totalLength == 0 else { throw .badLength(context: "NBD_REPLY_TYPE_NONE", length: totalLength, expected: "0") }
            return .none
        case .offsetData:
            guard totalLength > 8 else { throw .badLength(context: "NBD_REPLY_TYPE_OFFSET_DATA", length: totalLength, expected: "at least 9") }
            guard let offset = p.readInteger(as: UInt64.self) else { throw .truncated(context: "OFFSET_DATA", needed: 8, available: p.readableBytes) }
            return .offsetData(offset: offset, dataLength: totalLength - 8)
        case .offsetHole:
            try p.requireLength(12, context: "NBD_REPLY_TYPE_OFFSET_HOLE")
            return .offsetHole(offset: p.readInteger()!, length: p.readInteger()!)
        case .blockStatus:
            guard p.readableBytes >= 4, (p.readableBytes - 4) % 8 == 0, p.readableBytes > 4 else {
                throw .badLength(context: "NBD_REPLY_TYPE_BLOCK_STATUS", length: UInt64(p.readableBytes), expected: "4 + 8n, n >= 1")
            }
            let id: UInt32 = p.readInteger()!
            var out: [BlockDescriptor] = []
            out.reserveCapacity(p.readableBytes / 8)
            while p.readableBytes >= 8 {
                let len: UInt32 = p.readInteger()!
                let st: UInt32 = p.readInteger()!
                out.append(BlockDescriptor(length: UInt64(len), status: UInt64(st)))
            }
            return .blockStatus(contextID: id, descriptors: out)
        case .blockStatusExt:
            guard p.readableBytes >= 8, (p.readableBytes - 8) % 16 == 0 else {
                throw .badLength(context: "NBD_REPLY_TYPE_BLOCK_STATUS_EXT", length: UInt64(p.readableBytes), expected: "8 + 16n")
            }
            let id: UInt32 = p.readInteger()!
            let count: UInt32 = p.readInteger()!
            guard UInt64(count) * 16 == UInt64(p.readableBytes), count > 0 else {
                throw .inconsistent(context: "NBD_REPLY_TYPE_BLOCK_STATUS_EXT", detail: "count \(count) but \(p.readableBytes / 16) descriptors")
            }
            var out: [BlockDescriptor] = []
            out.reserveCapacity(Int(count))
            for _ in 0..<count { out.append(BlockDescriptor(length: p.readInteger()!, status: p.readInteger()!)) }
            return .blockStatusExt(contextID: id, descriptors: out)
        case .error, .errorOffset:
            let context = type == .error ? "NBD_REPLY_TYPE_ERROR" : "NBD_REPLY_TYPE_ERROR_OFFSET"
            guard p.readableBytes >= 6 else { throw .truncated(context: context, needed: 6, available: p.readableBytes) }
            let err: UInt32 = p.readInteger()!
            let msgLen: UInt16 = p.readInteger()!
            let tail = type == .errorOffset ? 8 : 0
            guard p.readableBytes == Int(msgLen) + tail else {
                if p.readableBytes < Int(msgLen) + tail {
                    throw .truncated(context: context, needed: Int(msgLen) + tail, available: p.readableBytes)
                }
                throw .inconsistent(context: context, detail: "message length \(msgLen) but \(p.readableBytes - tail) bytes follow")
            }
            let msg = p.readRemainingString(count: Int(msgLen))
            if type == .errorOffset {
                return .errorOffset(error: ErrorValue(rawValue: err), message: msg, offset: p.readInteger()!)
            }
            return .error(error: ErrorValue(rawValue: err), message: msg)
        case .unknown:
            if type.isError {
                // Unknown error chunks still start with the error value and message.
                guard p.readableBytes >= 6 else { throw .truncated(context: type.name, needed: 6, available: p.readableBytes) }
                let err: UInt32 = p.readInteger()!
                let msgLen = Int(p.readInteger(as: UInt16.self)!)
                let msg = p.readRemainingString(count: min(msgLen, p.readableBytes))
                return .error(error: ErrorValue(rawValue: err), message: msg)
            }
            return .unknown(length: totalLength)
        }
    }

    /// Writes the payload; for OFFSET_DATA only the 8-byte prefix and for an unknown type
    /// nothing: those bytes are the caller's, forwarded as they came.
    public func write(to buffer: inout ByteBuffer) {
        switch self {
        case .none, .unknown: break
        case .offsetData(let offset, _): buffer.writeInteger(offset)
        case .offsetHole(let offset, let length):
            buffer.writeInteger(offset)
            buffer.writeInteger(length)
        case .blockStatus(let id, let ds):
            buffer.writeInteger(id)
            for d in ds {
                buffer.writeInteger(UInt32(truncatingIfNeeded: d.length))
                buffer.writeInteger(UInt32(truncatingIfNeeded: d.status))
            }
        case .blockStatusExt(let id, let ds):
            buffer.writeInteger(id)
            buffer.writeInteger(UInt32(ds.count))
            for d in ds {
                buffer.writeInteger(d.length)
                buffer.writeInteger(d.status)
            }
        case .error(let e, let m):
            buffer.writeInteger(e.rawValue)
            buffer.writeInteger(UInt16(m.utf8.count))
            buffer.writeString(m)
        case .errorOffset(let e, let m, let o):
            buffer.writeInteger(e.rawValue)
            buffer.writeInteger(UInt16(m.utf8.count))
            buffer.writeString(m)
            buffer.writeInteger(o)
        }
    }

    /// The length field a chunk carrying this payload has on the wire.
    public var wireLength: UInt64 {
        switch self {
        case .none: return 0
        case .offsetData(_, let n): return 8 + n
        case .offsetHole: return 12
        case .blockStatus(_, let ds): return 4 + 8 * UInt64(ds.count)
        case .blockStatusExt(_, let ds): return 8 + 16 * UInt64(ds.count)
        case .error(_, let m): return 6 + UInt64(m.utf8.count)
        case .errorOffset(_, let m, _): return 14 + UInt64(m.utf8.count)
        case .unknown(let n): return n
        }
    }
}
