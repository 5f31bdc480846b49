import NIOCore

/// A simple reply: magic, error, cookie (16 bytes). READ data follows only when error is
/// 0, so its framing depends on the request it answers.
public struct SimpleReplyHeader: Hashable, Sendable {
    public static let length = 16
    public var error: ErrorValue
    public var cookie: UInt64

    public init(error: ErrorValue, cookie: UInt64) {
        self.error = error
        self.cookie = cookie
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(NBDMagic.simpleReply)
        buffer.writeInteger(error.rawValue)
        buffer.writeInteger(cookie)
    }
}

/// A structured (20-byte) or extended (32-byte) reply chunk header. The extended form
/// echoes the request's offset and has a 64-bit payload length.
public struct ReplyChunkHeader: Hashable, Sendable {
    public static let structuredLength = 20
    public static let extendedLength = 32

    public var flags: ReplyFlags
    public var type: ReplyChunkType
    public var cookie: UInt64
    /// Only on the wire for extended chunks; 0 otherwise.
    public var offset: UInt64
    public var length: UInt64
    public var extended: Bool

    public init(flags: ReplyFlags, type: ReplyChunkType, cookie: UInt64, offset: UInt64 = 0, length: UInt64, extended: Bool = false) {
        self.flags = flags
        self.type = type
        self.cookie = cookie
        self.offset = offset
        self.length = length
        self.extended = extended
    }

    public var wireLength: Int { extended ? Self.extendedLength : Self.structuredLength }
    public var isDone: Bool { flags.contains(.done) }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(extended ? NBDMagic.extendedReply : NBDMagic.structuredReply)
        buffer.writeInteger(flags.rawValue)
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(cookie)
        if extended {
            buffer.writeInteger(offset)
            buffer.writeInteger(length)
        } else {
            buffer.writeInteger(UInt32(truncatingIfNeeded: length))
        }
    }
}

/// Any transmission-phase reply header, told apart by its magic.
public enum ReplyHeader: Hashable, Sendable {
    case simple(SimpleReplyHeader)
    case chunk(ReplyChunkHeader)

    public var cookie: UInt64 {
        switch self {
        case .simple(let s): return s.cookie
        case .chunk(let c): return c.cookie
        }
    }

    /// Reads a reply header; nil means "need more bytes". Which magics are acceptable
    /// depends on what was negotiated, so the caller passes what it allows.
    public static func read(from buffer: inout ByteBuffer, allowSimple: Bool, allowStructured: Bool, allowExtended: Bool) throws(WireError) -> ReplyHeader? {
        guard let magic = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        switch magic {
        case NBDMagic.simpleReply where allowSimple:
            guard buffer.readableBytes >= SimpleReplyHeader.length else { return nil }
            buffer.moveReaderIndex(forwardBy: 4)
            let error: UInt32 = buffer.readInteger()!
            let cookie: UInt64 = buffer.readInteger()!
            return .simple(SimpleReplyHeader(error: ErrorValue(rawValue: error), cookie: cookie))
        case NBDMagic.structuredReply where allowStructured:
            guard buffer.readableBytes >= ReplyChunkHeader.structuredLength else { return nil }
            buffer.moveReaderIndex(forwardBy: 4)
            let flags: UInt16 = buffer.readInteger()!
            let type: UInt16 = buffer.readInteger()!
            let cookie: UInt64 = buffer.readInteger()!
            let length: UInt32 = buffer.readInteger()!
            return .chunk(ReplyChunkHeader(flags: ReplyFlags(rawValue: flags), type: ReplyChunkType(rawValue: type),
                                           cookie: cookie, length: UInt64(length)))
        case NBDMagic.extendedReply where allowExtended:
            guard buffer.readableBytes >= ReplyChunkHeader.extendedLength else { return nil }
            buffer.moveReaderIndex(forwardBy: 4)
            let flags: UInt16 = buffer.readInteger()!
            let type: UInt16 = buffer.readInteger()!
            let cookie: UInt64 = buffer.readInteger()!
            let offset: UInt64 = buffer.readInteger()!
            let length: UInt64 = buffer.readInteger()!
            return .chunk(ReplyChunkHeader(flags: ReplyFlags(rawValue: flags), type: ReplyChunkType(rawValue: type),
                                           cookie: cookie, offset: offset, length: length, extended: true))
        default:
            throw .badMagic(context: "reply", got: UInt64(magic))
        }
    }

    public func write(to buffer: inout ByteBuffer) {
        switch self {
        case .simple(let s): s.write(to: &buffer)
        case .chunk(let c): c.write(to: &buffer)
        }
    }
}
