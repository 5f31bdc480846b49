/// Request types NBD_CMD_* (u16). Unknown values are kept: the stream can continue after
/// one because the request header alone says whether a payload follows.
public enum NBDCommand: Hashable, Sendable {
    case read         // 0
    case write        // 1
    case disc         // 2
    case flush        // 3
    case trim         // 4
    case cache        // 5
    case writeZeroes  // 6
    case blockStatus  // 7
    case resize       // 8, experimental
    case unknown(UInt16)

    public init(rawValue: UInt16) {
        switch rawValue {
        case 0: self = .read
        case 1: self = .write
        case 2: self = .disc
        case 3: self = .flush
        case 4: self = .trim
        case 5: self = .cache
        case 6: self = .writeZeroes
        case 7: self = .blockStatus
        case 8: self = .resize
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt16 {
        switch self {
        case .read: return 0
        case .write: return 1
        case .disc: return 2
        case .flush: return 3
        case .trim: return 4
        case .cache: return 5
        case .writeZeroes: return 6
        case .blockStatus: return 7
        case .resize: return 8
        case .unknown(let v): return v
        }
    }

    /// Spec name without the NBD_CMD_ prefix, as the JSON log and statistics use it.
    public var name: String {
        switch self {
        case .read: return "READ"
        case .write: return "WRITE"
        case .disc: return "DISC"
        case .flush: return "FLUSH"
        case .trim: return "TRIM"
        case .cache: return "CACHE"
        case .writeZeroes: return "WRITE_ZEROES"
        case .blockStatus: return "BLOCK_STATUS"
        case .resize: return "RESIZE"
        case .unknown(let v): return "UNKNOWN_\(v)"
        }
    }

    /// The transmission flag that exposes this command, if the spec ties it to one.
    /// CACHE is listed although some clients send it regardless.
    public var requiredTransmissionFlag: TransmissionFlags? {
        switch self {
        case .read, .write, .disc, .blockStatus, .unknown: return nil
        case .flush: return .sendFlush
        case .trim: return .sendTrim
        case .cache: return .sendCache
        case .writeZeroes: return .sendWriteZeroes
        case .resize: return .sendResize
        }
    }

    /// Whether the command changes the export, and so fails on a READ_ONLY export.
    public var isWrite: Bool {
        switch self {
        case .write, .trim, .writeZeroes, .resize: return true
        case .read, .disc, .flush, .cache, .blockStatus, .unknown: return false
        }
    }
}
