import NBDProtocol

/// What nbdtap does with one option the client sent during haggling.
public enum OptionDecision: Hashable, Sendable {
    /// Relay it to the upstream and its replies back.
    case forward
    /// Answer it with this error reply (always NBD_REP_ERR_UNSUP today) and do not forward
    /// it; the option's data must still be read and discarded.
    case refuse(OptionReplyType)
    /// Close the connection: what a server without fixed newstyle does on any option but
    /// EXPORT_NAME, since it has no way to reply.
    case disconnect
}

extension EmulationOptions {
    /// The decision for `option`. Refusals imply one another the way real servers do:
    /// without structured replies there are no meta contexts and no extended headers, and
    /// without NBD_OPT_GO no extended headers (they forbid EXPORT_NAME). Under
    /// `--handshake oldstyle` the client sends no options, so any that arrive mean a
    /// confused client and get `.disconnect`.
    public func optionDecision(_ option: NBDOption) -> OptionDecision {
        if !allowsOptionHaggling {
            switch option {
            case .exportName: return handshake == .newstyle ? .forward : .disconnect
            case .abort, .list, .peekExport, .startTLS, .info, .go, .structuredReply,
                 .listMetaContext, .setMetaContext, .extendedHeaders, .unknown:
                return .disconnect
            }
        }
        let allowed: Bool
        switch option {
        case .exportName, .abort, .peekExport, .unknown: allowed = true
        case .list: allowed = !refused.contains(.list)
        case .startTLS: allowed = !refused.contains(.tls)
        case .info, .go: allowed = !refused.contains(.go)
        case .structuredReply: allowed = allowsStructuredReplies
        case .listMetaContext, .setMetaContext: allowed = allowsMetaContexts
        case .extendedHeaders: allowed = allowsExtendedHeaders
        }
        return allowed ? .forward : .refuse(.errUnsup)
    }
}
