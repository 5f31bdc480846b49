/// Command flags (u16 in every request header), bits 0-5.
public struct CommandFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let fua = CommandFlags(rawValue: 1 << 0)
    public static let noHole = CommandFlags(rawValue: 1 << 1)
    public static let df = CommandFlags(rawValue: 1 << 2)
    public static let reqOne = CommandFlags(rawValue: 1 << 3)
    public static let fastZero = CommandFlags(rawValue: 1 << 4)
    public static let payloadLen = CommandFlags(rawValue: 1 << 5)

    /// Every flag with its spec name (without NBD_CMD_FLAG_), in bit order; statistics
    /// count flags under these names.
    public static let all: [(CommandFlags, String)] = [
        (.fua, "FUA"), (.noHole, "NO_HOLE"), (.df, "DF"), (.reqOne, "REQ_ONE"),
        (.fastZero, "FAST_ZERO"), (.payloadLen, "PAYLOAD_LEN"),
    ]
    public static let known = CommandFlags(rawValue: 0x3f)

    public var names: [String] {
        if rawValue == 0 { return [] }
        var out = CommandFlags.all.filter { contains($0.0) }.map { $0.1 }
        out += unknownBitNames(UInt64(rawValue & ~CommandFlags.known.rawValue))
        return out
    }
}

/// Reply chunk flags (u16 in structured and extended reply chunks).
public struct ReplyFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// NBD_REPLY_FLAG_DONE: the last chunk for this cookie.
    public static let done = ReplyFlags(rawValue: 1 << 0)

    public var names: [String] {
        var out: [String] = []
        if contains(.done) { out.append("DONE") }
        out += unknownBitNames(UInt64(rawValue & ~ReplyFlags.done.rawValue))
        return out
    }
}
