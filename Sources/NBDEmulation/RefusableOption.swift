import NBDProtocol

/// A negotiation feature a `--no-…` flag turns off. nbdtap answers the options behind it
/// with NBD_REP_ERR_UNSUP itself, which is what a server that never heard of them says
/// (the spec's baseline rule for unknown options), and never forwards them.
public enum RefusableOption: String, CaseIterable, Hashable, Sendable, Comparable {
    case structuredReplies = "structured-replies"
    case metaContexts = "meta-contexts"
    case extendedHeaders = "extended-headers"
    case go
    case list
    case tls

    /// The command-line flag, e.g. `--no-structured-replies`.
    public var argument: String { "--no-\(rawValue)" }

    /// The options this flag refuses on its own. Some refusals imply others (a server
    /// without structured replies has no extended headers); `EmulationOptions` adds those.
    public var options: [NBDOption] {
        switch self {
        case .structuredReplies: return [.structuredReply]
        case .metaContexts: return [.listMetaContext, .setMetaContext]
        case .extendedHeaders: return [.extendedHeaders]
        case .go: return [.info, .go]
        case .list: return [.list]
        case .tls: return [.startTLS]
        }
    }

    public static func < (a: RefusableOption, b: RefusableOption) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}
