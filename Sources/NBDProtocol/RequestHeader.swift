import NIOCore

/// A transmission-phase request header: compact (28 bytes, u32 length) or extended
/// (32 bytes, u64 length, after NBD_OPT_EXTENDED_HEADERS). One type serves both so the
/// rest of nbdtap never cares which was on the wire.
public struct RequestHeader: Hashable, Sendable {
    public static let compactLength = 28
    public static let extendedLength = 32

    public var flags: CommandFlags
    public var command: NBDCommand
    /// Called "handle" before 2023; opaque to the server and echoed in the reply.
    public var cookie: UInt64
    public var offset: UInt64
    public var length: UInt64
    public var extended: Bool

    public init(flags: CommandFlags, command: NBDCommand, cookie: UInt64, offset: UInt64, length: UInt64, extended: Bool = false) {
        self.flags = flags
        self.command = command
        self.cookie = cookie
        self.offset = offset
        self.length = length
        self.extended = extended
    }

    public var wireLength: Int { extended ? Self.extendedLength : Self.compactLength }

    /// Bytes of payload that follow this header on the wire: the data of a WRITE, or with
    /// extended headers whatever PAYLOAD_LEN announces. A WRITE carries its length in data
    /// whether or not PAYLOAD_LEN is set: the extension text says the flag MUST be set,
    /// but qemu 10's client never sets it and qemu-nbd 10 frames such writes this way, so
    /// framing follows the peers (Docs/compliance.md).
    public var payloadLength: UInt64 {
        if case .write = command { return length }
        if extended && flags.contains(.payloadLen) { return length }
        return 0
    }

    /// Reads one header of the expected kind; nil means "need more bytes". The magic
    /// decides: an extended magic on a compact connection is reported, not guessed at.
    public static func read(from buffer: inout ByteBuffer, extended: Bool) throws(WireError) -> RequestHeader? {
        let need = extended ? extendedLength : compactLength
        guard let magic = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        let expected = extended ? NBDMagic.extendedRequest : NBDMagic.request
        guard magic == expected else { throw .badMagic(context: extended ? "extended request" : "request", got: UInt64(magic)) }
        guard buffer.readableBytes >= need else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        let flags: UInt16 = buffer.readInteger()!
        let type: UInt16 = buffer.readInteger()!
        let cookie: UInt64 = buffer.readInteger()!
        let offset: UInt64 = buffer.readInteger()!
        let length: UInt64 = extended ? buffer.readInteger()! : UInt64(buffer.readInteger(as: UInt32.self)!)
        return RequestHeader(flags: CommandFlags(rawValue: flags), command: NBDCommand(rawValue: type),
                             cookie: cookie, offset: offset, length: length, extended: extended)
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(extended ? NBDMagic.extendedRequest : NBDMagic.request)
        buffer.writeInteger(flags.rawValue)
        buffer.writeInteger(command.rawValue)
        buffer.writeInteger(cookie)
        buffer.writeInteger(offset)
        if extended { buffer.writeInteger(length) } else { buffer.writeInteger(UInt32(truncatingIfNeeded: length)) }
    }
}
