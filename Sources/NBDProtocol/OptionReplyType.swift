/// Option reply types NBD_REP_* (u32). Bit 31 marks an error; unknown errors stay errors.
public enum OptionReplyType: Hashable, Sendable {
    case ack                // 1
    case server             // 2
    case info               // 3
    case metaContext        // 4
    case errUnsup           // 2^31 + 1
    case errPolicy          // + 2
    case errInvalid         // + 3
    case errPlatform        // + 4
    case errTLSReqd         // + 5
    case errUnknown         // + 6
    case errShutdown        // + 7
    case errBlockSizeReqd   // + 8
    case errTooBig          // + 9
    case errExtHeaderReqd   // + 10
    case unknown(UInt32)

    public static let errorBit: UInt32 = 1 << 31

    public init(rawValue: UInt32) {
        switch rawValue {
        case 1: self = .ack
        case 2: self = .server
        case 3: self = .info
        case 4: self = .metaContext
        case OptionReplyType.errorBit | 1: self = .errUnsup
        case OptionReplyType.errorBit | 2: self = .errPolicy
        case OptionReplyType.errorBit | 3: self = .errInvalid
        case OptionReplyType.errorBit | 4: self = .errPlatform
        case OptionReplyType.errorBit | 5: self = .errTLSReqd
        case OptionReplyType.errorBit | 6: self = .errUnknown
        case OptionReplyType.errorBit | 7: self = .errShutdown
        case OptionReplyType.errorBit | 8: self = .errBlockSizeReqd
        case OptionReplyType.errorBit | 9: self = .errTooBig
        case OptionReplyType.errorBit | 10: self = .errExtHeaderReqd
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt32 {
        switch self {
        case .ack: return 1
        case .server: return 2
        case .info: return 3
        case .metaContext: return 4
        case .errUnsup: return OptionReplyType.errorBit | 1
        case .errPolicy: return OptionReplyType.errorBit | 2
        case .errInvalid: return OptionReplyType.errorBit | 3
        case .errPlatform: return OptionReplyType.errorBit | 4
        case .errTLSReqd: return OptionReplyType.errorBit | 5
        case .errUnknown: return OptionReplyType.errorBit | 6
        case .errShutdown: return OptionReplyType.errorBit | 7
        case .errBlockSizeReqd: return OptionReplyType.errorBit | 8
        case .errTooBig: return OptionReplyType.errorBit | 9
        case .errExtHeaderReqd: return OptionReplyType.errorBit | 10
        case .unknown(let v): return v
        }
    }

    public var isError: Bool { rawValue & OptionReplyType.errorBit != 0 }

    /// Spec name without the NBD_REP_ prefix.
    public var name: String {
        switch self {
        case .ack: return "ACK"
        case .server: return "SERVER"
        case .info: return "INFO"
        case .metaContext: return "META_CONTEXT"
        case .errUnsup: return "ERR_UNSUP"
        case .errPolicy: return "ERR_POLICY"
        case .errInvalid: return "ERR_INVALID"
        case .errPlatform: return "ERR_PLATFORM"
        case .errTLSReqd: return "ERR_TLS_REQD"
        case .errUnknown: return "ERR_UNKNOWN"
        case .errShutdown: return "ERR_SHUTDOWN"
        case .errBlockSizeReqd: return "ERR_BLOCK_SIZE_REQD"
        case .errTooBig: return "ERR_TOO_BIG"
        case .errExtHeaderReqd: return "ERR_EXT_HEADER_REQD"
        case .unknown(let v):
            return isError ? "ERR_\(v & ~OptionReplyType.errorBit)" : "UNKNOWN_\(v)"
        }
    }
}
