/// Server handshake flags (u16 in the newstyle greeting).
public struct HandshakeFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let fixedNewstyle = HandshakeFlags(rawValue: 1 << 0)
    public static let noZeroes = HandshakeFlags(rawValue: 1 << 1)

    /// Bits the spec defines; a server MUST NOT set others.
    public static let known: HandshakeFlags = [.fixedNewstyle, .noZeroes]

    /// Spec names of the set bits, unknown bits as `BIT_n`, so nothing is dropped.
    public var names: [String] {
        var out: [String] = []
        if contains(.fixedNewstyle) { out.append("FIXED_NEWSTYLE") }
        if contains(.noZeroes) { out.append("NO_ZEROES") }
        out += unknownBitNames(UInt64(rawValue & ~HandshakeFlags.known.rawValue))
        return out
    }
}

/// Client flags (u32 sent after a newstyle greeting).
public struct ClientFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let fixedNewstyle = ClientFlags(rawValue: 1 << 0)
    public static let noZeroes = ClientFlags(rawValue: 1 << 1)
    public static let known: ClientFlags = [.fixedNewstyle, .noZeroes]

    public var names: [String] {
        var out: [String] = []
        if contains(.fixedNewstyle) { out.append("C_FIXED_NEWSTYLE") }
        if contains(.noZeroes) { out.append("C_NO_ZEROES") }
        out += unknownBitNames(UInt64(rawValue & ~ClientFlags.known.rawValue))
        return out
    }
}

/// Names unknown flag bits `BIT_n` so a log keeps every bit it saw.
@usableFromInline
func unknownBitNames(_ bits: UInt64) -> [String] {
    var out: [String] = []
    var rest = bits
    while rest != 0 {
        let bit = rest.trailingZeroBitCount
        out.append("BIT_\(bit)")
        rest &= rest - 1
    }
    return out
}
