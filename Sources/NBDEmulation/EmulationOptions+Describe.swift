import NBDProtocol

/// Turning options back into words: the canonical command line (which parses back to the
/// same value) and the plain-English list of changes `nbdtap profiles` prints.
extension EmulationOptions {
    /// The shortest command line that parses back to these options, in a fixed order.
    public var arguments: [String] {
        var out: [String] = []
        if !masked.isEmpty { out += ["--mask", masked.sorted().map(\.name).joined(separator: ",")] }
        if readOnly { out.append("--read-only") }
        out += refused.sorted().map(\.argument)
        if !maskedHandshake.isEmpty {
            out += ["--mask-handshake", maskedHandshake.sorted().map(\.rawValue).joined(separator: ",")]
        }
        if handshake != .newstyle { out += ["--handshake", handshake.rawValue] }
        if zeroMode != .passthrough { out += ["--zeromode", zeroMode.rawValue] }
        if fastZeroMode != .default { out += ["--fastzeromode", fastZeroMode.rawValue] }
        return out
    }

    /// Transmission flags these options always hide, whatever the upstream: masks, the
    /// read-only rule, and what the negotiation refusals make impossible.
    public var alwaysHidden: TransmissionFlags {
        var hidden: TransmissionFlags = []
        for feature in masked { hidden.formUnion(feature.hiddenFlags) }
        if readOnly { hidden.formUnion(Self.hiddenWhenReadOnly) }
        if !allowsStructuredReplies { hidden.insert(.sendDF) }
        if !allowsExtendedHeaders { hidden.insert(.blockStatusPayload) }
        switch zeroMode {
        case .none: hidden.formUnion([.sendWriteZeroes, .sendFastZero])
        case .passthrough, .emulate, .notrim, .plugin: break
        }
        return hidden
    }

    /// One line per change, for `nbdtap profiles` and the proxy's startup banner.
    public var changes: [String] {
        if isTransparent { return ["nothing (transparent)"] }
        var out: [String] = []
        let hidden = alwaysHidden
        if !hidden.isEmpty { out.append("hides \(hidden.names.joined(separator: ", "))") }
        if readOnly { out.append("read-only: shows READ_ONLY, writes fail with EPERM") }
        let refusedOptions = Self.negotiableOptions.filter {
            if case .refuse = optionDecision($0) { return true } else { return false }
        }
        if !refusedOptions.isEmpty, allowsOptionHaggling {
            out.append("refuses \(refusedOptions.map(\.name).joined(separator: ", ")) with ERR_UNSUP")
        }
        switch handshake {
        case .oldstyle: out.append("oldstyle greeting (no options)")
        case .newstyle:
            if !maskedHandshake.isEmpty {
                out.append("hides handshake flags \(HandshakeFlags(maskedHandshake.map(\.flag)).names.joined(separator: ", "))")
            }
        }
        switch zeroMode {
        case .passthrough:
            if fastZeroMode != .default { out.append("fastzeromode=\(fastZeroMode.rawValue)") }
        case .none, .emulate, .notrim, .plugin:
            out.append("zeromode=\(zeroMode.rawValue) fastzeromode=\(fastZeroMode.rawValue)")
        }
        return out
    }

    /// The options a refusal can apply to, in option-number order.
    static let negotiableOptions: [NBDOption] = [.list, .startTLS, .info, .go, .structuredReply,
                                                 .listMetaContext, .setMetaContext, .extendedHeaders]
}
