/// Option types NBD_OPT_* (u32, client to server during haggling). Unknown values are kept.
public enum NBDOption: Hashable, Sendable {
    case exportName        // 1
    case abort             // 2
    case list              // 3
    case peekExport        // 4, withdrawn
    case startTLS          // 5
    case info              // 6
    case go                // 7
    case structuredReply   // 8
    case listMetaContext   // 9
    case setMetaContext    // 10
    case extendedHeaders   // 11
    case unknown(UInt32)

    public init(rawValue: UInt32) {
        switch rawValue {
        case 1: self = .exportName
        case 2: self = .abort
        case 3: self = .list
        case 4: self = .peekExport
        case 5: self = .startTLS
        case 6: self = .info
        case 7: self = .go
        case 8: self = .structuredReply
        case 9: self = .listMetaContext
        case 10: self = .setMetaContext
        case 11: self = .extendedHeaders
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt32 {
        switch self {
        case .exportName: return 1
        case .abort: return 2
        case .list: return 3
        case .peekExport: return 4
        case .startTLS: return 5
        case .info: return 6
        case .go: return 7
        case .structuredReply: return 8
        case .listMetaContext: return 9
        case .setMetaContext: return 10
        case .extendedHeaders: return 11
        case .unknown(let v): return v
        }
    }

    /// Spec name without the NBD_OPT_ prefix.
    public var name: String {
        switch self {
        case .exportName: return "EXPORT_NAME"
        case .abort: return "ABORT"
        case .list: return "LIST"
        case .peekExport: return "PEEK_EXPORT"
        case .startTLS: return "STARTTLS"
        case .info: return "INFO"
        case .go: return "GO"
        case .structuredReply: return "STRUCTURED_REPLY"
        case .listMetaContext: return "LIST_META_CONTEXT"
        case .setMetaContext: return "SET_META_CONTEXT"
        case .extendedHeaders: return "EXTENDED_HEADERS"
        case .unknown(let v): return "UNKNOWN_\(v)"
        }
    }
}
