import NIOCore

/// The server's first message. Oldstyle servers send everything in it; newstyle servers
/// send only the handshake flags and wait for options.
public enum ServerGreeting: Hashable, Sendable {
    case oldstyle(OldstyleGreeting)
    case newstyle(HandshakeFlags)

    public static let newstyleLength = 18
    public static let oldstyleLength = 152

    /// Reads a greeting when enough bytes are present; nil means "need more bytes".
    public static func read(from buffer: inout ByteBuffer) throws(WireError) -> ServerGreeting? {
        guard let magic = buffer.getInteger(at: buffer.readerIndex, as: UInt64.self),
              let second = buffer.getInteger(at: buffer.readerIndex + 8, as: UInt64.self) else {
            return nil
        }
        guard magic == NBDMagic.initPasswd else { throw .badMagic(context: "server greeting", got: magic) }
        switch second {
        case NBDMagic.iHaveOpt:
            guard buffer.readableBytes >= newstyleLength else { return nil }
            buffer.moveReaderIndex(forwardBy: 16)
            return .newstyle(HandshakeFlags(rawValue: buffer.readInteger()!))
        case NBDMagic.cliservMagic:
            guard buffer.readableBytes >= oldstyleLength else { return nil }
            buffer.moveReaderIndex(forwardBy: 16)
            let size: UInt64 = buffer.readInteger()!
            let flags: UInt32 = buffer.readInteger()!
            let zeroes = buffer.readSlice(length: 124)!
            return .oldstyle(OldstyleGreeting(size: size, globalAndTransmissionFlags: flags,
                                              reservedNonZero: zeroes.readableBytesView.contains { $0 != 0 }))
        default:
            throw .badMagic(context: "server greeting (second magic)", got: second)
        }
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(NBDMagic.initPasswd)
        switch self {
        case .newstyle(let flags):
            buffer.writeInteger(NBDMagic.iHaveOpt)
            buffer.writeInteger(flags.rawValue)
        case .oldstyle(let g):
            buffer.writeInteger(NBDMagic.cliservMagic)
            buffer.writeInteger(g.size)
            buffer.writeInteger(g.globalAndTransmissionFlags)
            buffer.writeRepeatingByte(0, count: 124)
        }
    }
}

/// The oldstyle greeting's export description. The u32 flags field holds 16 bits of
/// (unused) global flags above the 16 transmission flags, as nbdkit and nbd-server send it.
public struct OldstyleGreeting: Hashable, Sendable {
    public var size: UInt64
    public var globalAndTransmissionFlags: UInt32
    /// The spec reserves the 124 trailing bytes as zeroes; a decoder reports otherwise.
    public var reservedNonZero: Bool

    public init(size: UInt64, globalAndTransmissionFlags: UInt32, reservedNonZero: Bool = false) {
        self.size = size
        self.globalAndTransmissionFlags = globalAndTransmissionFlags
        self.reservedNonZero = reservedNonZero
    }

    public var transmissionFlags: TransmissionFlags {
        TransmissionFlags(rawValue: UInt16(truncatingIfNeeded: globalAndTransmissionFlags))
    }
}

/// The server's answer to NBD_OPT_EXPORT_NAME: size and flags with no magic, followed by
/// 124 zero bytes unless both sides agreed on NO_ZEROES.
public struct ExportNameReply: Hashable, Sendable {
    public var size: UInt64
    public var flags: TransmissionFlags
    public var zeroesOmitted: Bool

    public init(size: UInt64, flags: TransmissionFlags, zeroesOmitted: Bool) {
        self.size = size
        self.flags = flags
        self.zeroesOmitted = zeroesOmitted
    }

    public static func length(zeroesOmitted: Bool) -> Int { zeroesOmitted ? 10 : 134 }

    public static func read(from buffer: inout ByteBuffer, zeroesOmitted: Bool) -> ExportNameReply? {
        guard buffer.readableBytes >= length(zeroesOmitted: zeroesOmitted) else { return nil }
        let size: UInt64 = buffer.readInteger()!
        let flags: UInt16 = buffer.readInteger()!
        if !zeroesOmitted { buffer.moveReaderIndex(forwardBy: 124) }
        return ExportNameReply(size: size, flags: TransmissionFlags(rawValue: flags), zeroesOmitted: zeroesOmitted)
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(size)
        buffer.writeInteger(flags.rawValue)
        if !zeroesOmitted { buffer.writeRepeatingByte(0, count: 124) }
    }
}
