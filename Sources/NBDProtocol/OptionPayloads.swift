import NIOCore

/// The data of NBD_OPT_INFO and NBD_OPT_GO: export name and the NBD_INFO_* types asked for.
public struct InfoRequest: Hashable, Sendable {
    public var exportName: String
    public var requests: [InfoType]

    public init(exportName: String, requests: [InfoType]) {
        self.exportName = exportName
        self.requests = requests
    }

    public static func parse(_ data: ByteBuffer) throws(WireError) -> InfoRequest {
        var data = data
        let name = try data.readLengthPrefixedString(context: "INFO/GO export name")
        guard let count = data.readInteger(as: UInt16.self) else {
            throw .truncated(context: "INFO/GO request count", needed: 2, available: data.readableBytes)
        }
        guard data.readableBytes == Int(count) * 2 else {
            throw .inconsistent(context: "INFO/GO", detail: "\(count) information requests need \(Int(count) * 2) bytes, \(data.readableBytes) follow")
        }
        var requests: [InfoType] = []
        requests.reserveCapacity(Int(count))
        for _ in 0..<count { requests.append(InfoType(rawValue: data.readInteger()!)) }
        return InfoRequest(exportName: name, requests: requests)
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeLengthPrefixedString(exportName)
        buffer.writeInteger(UInt16(requests.count))
        for r in requests { buffer.writeInteger(r.rawValue) }
    }
}

/// The data of NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT.
public struct MetaContextRequest: Hashable, Sendable {
    public var exportName: String
    public var queries: [String]

    public init(exportName: String, queries: [String]) {
        self.exportName = exportName
        self.queries = queries
    }

    public static func parse(_ data: ByteBuffer) throws(WireError) -> MetaContextRequest {
        var data = data
        let name = try data.readLengthPrefixedString(context: "META_CONTEXT export name")
        guard let count = data.readInteger(as: UInt32.self) else {
            throw .truncated(context: "META_CONTEXT query count", needed: 4, available: data.readableBytes)
        }
        // Each query takes at least 4 bytes, so a count beyond that is a lie: refuse it
        // before reserving anything.
        guard UInt64(count) * 4 <= UInt64(data.readableBytes) else {
            throw .inconsistent(context: "META_CONTEXT", detail: "\(count) queries cannot fit in \(data.readableBytes) bytes")
        }
        var queries: [String] = []
        for _ in 0..<count { queries.append(try data.readLengthPrefixedString(context: "META_CONTEXT query")) }
        guard data.readableBytes == 0 else {
            throw .inconsistent(context: "META_CONTEXT", detail: "\(data.readableBytes) bytes after the last query")
        }
        return MetaContextRequest(exportName: name, queries: queries)
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeLengthPrefixedString(exportName)
        buffer.writeInteger(UInt32(queries.count))
        for q in queries { buffer.writeLengthPrefixedString(q) }
    }
}

/// An option's data, decoded according to its type.
public enum OptionData: Hashable, Sendable {
    /// NBD_OPT_EXPORT_NAME: the whole data is the name.
    case exportName(String)
    case info(InfoRequest)
    case metaContext(MetaContextRequest)
    /// Options whose data the spec leaves empty (ABORT, LIST, STARTTLS, STRUCTURED_REPLY,
    /// EXTENDED_HEADERS) or that nbdtap does not interpret: just the length.
    case opaque(length: UInt32)

    public static func parse(option: NBDOption, data: ByteBuffer) throws(WireError) -> OptionData {
        switch option {
        case .exportName:
            var d = data
            return .exportName(d.readRemainingString(count: d.readableBytes))
        case .info, .go:
            return .info(try InfoRequest.parse(data))
        case .listMetaContext, .setMetaContext:
            return .metaContext(try MetaContextRequest.parse(data))
        case .abort, .list, .peekExport, .startTLS, .structuredReply, .extendedHeaders, .unknown:
            return .opaque(length: UInt32(data.readableBytes))
        }
    }
}

/// The payload of NBD_REP_INFO.
public enum InfoPayload: Hashable, Sendable {
    case export(size: UInt64, flags: TransmissionFlags)
    case name(String)
    case description(String)
    case blockSize(minimum: UInt32, preferred: UInt32, maximum: UInt32)
    case unknown(type: UInt16, length: Int)

    public var type: InfoType {
        switch self {
        case .export: return .export
        case .name: return .name
        case .description: return .description
        case .blockSize: return .blockSize
        case .unknown(let t, _): return .unknown(t)
        }
    }

    public static func parse(_ data: ByteBuffer) throws(WireError) -> InfoPayload {
        var data = data
        guard let raw = data.readInteger(as: UInt16.self) else {
            throw .truncated(context: "NBD_REP_INFO", needed: 2, available: data.readableBytes)
        }
        switch InfoType(rawValue: raw) {
        case .export:
            try data.requireLength(10, context: "NBD_INFO_EXPORT")
            return .export(size: data.readInteger()!, flags: TransmissionFlags(rawValue: data.readInteger()!))
        case .name:
            return .name(data.readRemainingString(count: data.readableBytes))
        case .description:
            return .description(data.readRemainingString(count: data.readableBytes))
        case .blockSize:
            try data.requireLength(12, context: "NBD_INFO_BLOCK_SIZE")
            return .blockSize(minimum: data.readInteger()!, preferred: data.readInteger()!, maximum: data.readInteger()!)
        case .unknown(let t):
            return .unknown(type: t, length: data.readableBytes)
        }
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(type.rawValue)
        switch self {
        case .export(let size, let flags):
            buffer.writeInteger(size)
            buffer.writeInteger(flags.rawValue)
        case .name(let s), .description(let s):
            buffer.writeString(s)
        case .blockSize(let a, let b, let c):
            buffer.writeInteger(a)
            buffer.writeInteger(b)
            buffer.writeInteger(c)
        case .unknown(_, let length):
            buffer.writeRepeatingByte(0, count: length)
        }
    }
}

/// An option reply's payload, decoded according to its type.
public enum OptionReplyData: Hashable, Sendable {
    case ack
    /// NBD_REP_SERVER: an export name and an optional human description (the rest).
    case server(name: String, description: String)
    case info(InfoPayload)
    case metaContext(id: UInt32, name: String)
    /// Any error reply: its optional human-readable message.
    case error(message: String)
    case unknown(length: UInt32)

    public static func parse(type: OptionReplyType, data: ByteBuffer) throws(WireError) -> OptionReplyData {
        var data = data
        switch type {
        case .ack:
            try data.requireLength(0, context: "NBD_REP_ACK")
            return .ack
        case .server:
            let name = try data.readLengthPrefixedString(context: "NBD_REP_SERVER name")
            return .server(name: name, description: data.readRemainingString(count: data.readableBytes))
        case .info:
            return .info(try InfoPayload.parse(data))
        case .metaContext:
            guard let id = data.readInteger(as: UInt32.self) else {
                throw .truncated(context: "NBD_REP_META_CONTEXT", needed: 4, available: data.readableBytes)
            }
            return .metaContext(id: id, name: data.readRemainingString(count: data.readableBytes))
        case .errUnsup, .errPolicy, .errInvalid, .errPlatform, .errTLSReqd, .errUnknown,
             .errShutdown, .errBlockSizeReqd, .errTooBig, .errExtHeaderReqd:
            return .error(message: data.readRemainingString(count: data.readableBytes))
        case .unknown:
            if type.isError { return .error(message: data.readRemainingString(count: data.readableBytes)) }
            return .unknown(length: UInt32(data.readableBytes))
        }
    }

    public func write(to buffer: inout ByteBuffer) {
        switch self {
        case .ack: break
        case .server(let name, let description):
            buffer.writeLengthPrefixedString(name)
            buffer.writeString(description)
        case .info(let p): p.write(to: &buffer)
        case .metaContext(let id, let name):
            buffer.writeInteger(id)
            buffer.writeString(name)
        case .error(let message): buffer.writeString(message)
        case .unknown(let length): buffer.writeRepeatingByte(0, count: Int(length))
        }
    }
}
