/// Information types NBD_INFO_* (u16), requested in INFO/GO and carried by NBD_REP_INFO.
public enum InfoType: Hashable, Sendable {
    case export       // 0
    case name         // 1
    case description  // 2
    case blockSize    // 3
    case unknown(UInt16)

    public init(rawValue: UInt16) {
        switch rawValue {
        case 0: self = .export
        case 1: self = .name
        case 2: self = .description
        case 3: self = .blockSize
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt16 {
        switch self {
        case .export: return 0
        case .name: return 1
        case .description: return 2
        case .blockSize: return 3
        case .unknown(let v): return v
        }
    }

    public var name: String {
        switch self {
        case .export: return "EXPORT"
        case .name: return "NAME"
        case .description: return "DESCRIPTION"
        case .blockSize: return "BLOCK_SIZE"
        case .unknown(let v): return "UNKNOWN_\(v)"
        }
    }
}
