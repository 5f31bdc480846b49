/// Structured and extended reply chunk types NBD_REPLY_TYPE_* (u16). Bit 15 marks an
/// error chunk: an unknown error chunk fails the request but the connection goes on.
public enum ReplyChunkType: Hashable, Sendable {
    case none             // 0
    case offsetData       // 1
    case offsetHole       // 2
    case blockStatus      // 5
    case blockStatusExt   // 6
    case error            // 2^15 + 1
    case errorOffset      // 2^15 + 2
    case unknown(UInt16)

    public static let errorBit: UInt16 = 1 << 15

    public init(rawValue: UInt16) {
        switch rawValue {
        case 0: self = .none
        case 1: self = .offsetData
        case 2: self = .offsetHole
        case 5: self = .blockStatus
        case 6: self = .blockStatusExt
        case 32769: self = .error
        case 32770: self = .errorOffset
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt16 {
        switch self {
        case .none: return 0
        case .offsetData: return 1
        case .offsetHole: return 2
        case .blockStatus: return 5
        case .blockStatusExt: return 6
        case .error: return 32769
        case .errorOffset: return 32770
        case .unknown(let v): return v
        }
    }

    public var isError: Bool { rawValue & ReplyChunkType.errorBit != 0 }

    public var name: String {
        switch self {
        case .none: return "NONE"
        case .offsetData: return "OFFSET_DATA"
        case .offsetHole: return "OFFSET_HOLE"
        case .blockStatus: return "BLOCK_STATUS"
        case .blockStatusExt: return "BLOCK_STATUS_EXT"
        case .error: return "ERROR"
        case .errorOffset: return "ERROR_OFFSET"
        case .unknown(let v): return isError ? "ERROR_UNKNOWN_\(v)" : "UNKNOWN_\(v)"
        }
    }
}
