import NIOCore

/// The 16-byte header of every option the client sends: IHAVEOPT, option, data length.
public struct OptionHeader: Hashable, Sendable {
    public static let length = 16
    public var option: NBDOption
    public var dataLength: UInt32

    public init(option: NBDOption, dataLength: UInt32) {
        self.option = option
        self.dataLength = dataLength
    }

    public static func read(from buffer: inout ByteBuffer) throws(WireError) -> OptionHeader? {
        guard buffer.readableBytes >= length else { return nil }
        let magic = buffer.getInteger(at: buffer.readerIndex, as: UInt64.self)!
        guard magic == NBDMagic.iHaveOpt else { throw .badMagic(context: "option", got: magic) }
        buffer.moveReaderIndex(forwardBy: 8)
        let option: UInt32 = buffer.readInteger()!
        let dataLength: UInt32 = buffer.readInteger()!
        return OptionHeader(option: NBDOption(rawValue: option), dataLength: dataLength)
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(NBDMagic.iHaveOpt)
        buffer.writeInteger(option.rawValue)
        buffer.writeInteger(dataLength)
    }
}

/// The 20-byte header of every option reply: magic, option echoed, reply type, length.
public struct OptionReplyHeader: Hashable, Sendable {
    public static let length = 20
    public var option: NBDOption
    public var type: OptionReplyType
    public var dataLength: UInt32

    public init(option: NBDOption, type: OptionReplyType, dataLength: UInt32) {
        self.option = option
        self.type = type
        self.dataLength = dataLength
    }

    public static func read(from buffer: inout ByteBuffer) throws(WireError) -> OptionReplyHeader? {
        guard buffer.readableBytes >= length else { return nil }
        let magic = buffer.getInteger(at: buffer.readerIndex, as: UInt64.self)!
        guard magic == NBDMagic.optionReply else { throw .badMagic(context: "option reply", got: magic) }
        buffer.moveReaderIndex(forwardBy: 8)
        let option: UInt32 = buffer.readInteger()!
        let type: UInt32 = buffer.readInteger()!
        let dataLength: UInt32 = buffer.readInteger()!
        return OptionReplyHeader(option: NBDOption(rawValue: option), type: OptionReplyType(rawValue: type), dataLength: dataLength)
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(NBDMagic.optionReply)
        buffer.writeInteger(option.rawValue)
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(dataLength)
    }
}
