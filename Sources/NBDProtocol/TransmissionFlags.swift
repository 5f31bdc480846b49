/// Transmission flags (u16) of an export: in the oldstyle greeting, the EXPORT_NAME reply
/// and NBD_INFO_EXPORT. Bits 0-12 as in the current spec (bit 12 from extended headers).
public struct TransmissionFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let hasFlags = TransmissionFlags(rawValue: 1 << 0)
    public static let readOnly = TransmissionFlags(rawValue: 1 << 1)
    public static let sendFlush = TransmissionFlags(rawValue: 1 << 2)
    public static let sendFUA = TransmissionFlags(rawValue: 1 << 3)
    public static let rotational = TransmissionFlags(rawValue: 1 << 4)
    public static let sendTrim = TransmissionFlags(rawValue: 1 << 5)
    public static let sendWriteZeroes = TransmissionFlags(rawValue: 1 << 6)
    public static let sendDF = TransmissionFlags(rawValue: 1 << 7)
    public static let canMultiConn = TransmissionFlags(rawValue: 1 << 8)
    public static let sendResize = TransmissionFlags(rawValue: 1 << 9)
    public static let sendCache = TransmissionFlags(rawValue: 1 << 10)
    public static let sendFastZero = TransmissionFlags(rawValue: 1 << 11)
    public static let blockStatusPayload = TransmissionFlags(rawValue: 1 << 12)

    /// Every flag with its spec name (without the NBD_FLAG_ prefix), in bit order.
    public static let all: [(TransmissionFlags, String)] = [
        (.hasFlags, "HAS_FLAGS"), (.readOnly, "READ_ONLY"), (.sendFlush, "SEND_FLUSH"),
        (.sendFUA, "SEND_FUA"), (.rotational, "ROTATIONAL"), (.sendTrim, "SEND_TRIM"),
        (.sendWriteZeroes, "SEND_WRITE_ZEROES"), (.sendDF, "SEND_DF"), (.canMultiConn, "CAN_MULTI_CONN"),
        (.sendResize, "SEND_RESIZE"), (.sendCache, "SEND_CACHE"), (.sendFastZero, "SEND_FAST_ZERO"),
        (.blockStatusPayload, "BLOCK_STATUS_PAYLOAD"),
    ]
    public static let known = TransmissionFlags(rawValue: 0x1fff)

    public var names: [String] {
        var out = TransmissionFlags.all.filter { contains($0.0) }.map { $0.1 }
        out += unknownBitNames(UInt64(rawValue & ~TransmissionFlags.known.rawValue))
        return out
    }
}
