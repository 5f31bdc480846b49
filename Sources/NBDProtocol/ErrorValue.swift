/// Error values of the reply `error` field (u32). Names are the errno names nbdkit's log
/// filter prints, so grep patterns written for nbdkit logs match.
public enum ErrorValue: Hashable, Sendable {
    case ok          // 0
    case eperm       // 1
    case eio         // 5
    case enomem      // 12
    case einval      // 22
    case enospc      // 28
    case eoverflow   // 75
    case enotsup     // 95
    case eshutdown   // 108
    case unknown(UInt32)

    public init(rawValue: UInt32) {
        switch rawValue {
        case 0: self = .ok
        case 1: self = .eperm
        case 5: self = .eio
        case 12: self = .enomem
        case 22: self = .einval
        case 28: self = .enospc
        case 75: self = .eoverflow
        case 95: self = .enotsup
        case 108: self = .eshutdown
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt32 {
        switch self {
        case .ok: return 0
        case .eperm: return 1
        case .eio: return 5
        case .enomem: return 12
        case .einval: return 22
        case .enospc: return 28
        case .eoverflow: return 75
        case .enotsup: return 95
        case .eshutdown: return 108
        case .unknown(let v): return v
        }
    }

    /// errno-style name without the NBD_ prefix; unknown values print as `E<number>`.
    public var name: String {
        switch self {
        case .ok: return "OK"
        case .eperm: return "EPERM"
        case .eio: return "EIO"
        case .enomem: return "ENOMEM"
        case .einval: return "EINVAL"
        case .enospc: return "ENOSPC"
        case .eoverflow: return "EOVERFLOW"
        case .enotsup: return "ENOTSUP"
        case .eshutdown: return "ESHUTDOWN"
        case .unknown(let v): return "E\(v)"
        }
    }
}
