import NBDProtocol

/// What nbdtap changes between a client and its upstream to imitate an older or smaller
/// server. A plain value: the proxy builds one per listener and asks it the decisions in
/// `shownFlags`, `optionDecision`, `requestDecision` and `handshakeFlags`; nothing here
/// does I/O. The default value changes nothing (`isTransparent`).
public struct EmulationOptions: Hashable, Sendable {
    /// `--mask FEATURE,...`: transmission flags hidden from the client.
    public var masked: Set<MaskFeature>
    /// `--read-only`: the export is shown read-only and writes fail with EPERM.
    public var readOnly: Bool
    /// `--no-structured-replies`, `--no-meta-contexts`, ...: options nbdtap refuses itself.
    public var refused: Set<RefusableOption>
    /// `--mask-handshake`: newstyle handshake flags hidden from the client.
    public var maskedHandshake: Set<HandshakeFeature>
    /// `--handshake`: the greeting style shown to the client.
    public var handshake: HandshakeStyle
    /// `--zeromode`: how write zeroes are offered and served.
    public var zeroMode: ZeroMode
    /// `--fastzeromode`: how fast zeroes are offered and served.
    public var fastZeroMode: FastZeroMode

    public init(masked: Set<MaskFeature> = [], readOnly: Bool = false, refused: Set<RefusableOption> = [],
                maskedHandshake: Set<HandshakeFeature> = [], handshake: HandshakeStyle = .newstyle,
                zeroMode: ZeroMode = .passthrough, fastZeroMode: FastZeroMode = .default) {
        self.masked = masked
        self.readOnly = readOnly
        self.refused = refused
        self.maskedHandshake = maskedHandshake
        self.handshake = handshake
        self.zeroMode = zeroMode
        self.fastZeroMode = fastZeroMode
    }

    /// The options that change nothing.
    public static let transparent = EmulationOptions()

    /// True when nbdtap rewrites nothing: every decision is "forward unchanged", so the
    /// proxy may skip asking. Any option given, even one the upstream would make moot
    /// (masking a flag it never shows), counts as a change, because the answer must not
    /// depend on which upstream the proxy meets.
    public var isTransparent: Bool { self == .transparent }

    /// Whether the client can ever negotiate structured replies through nbdtap. An oldstyle
    /// greeting and a non-fixed newstyle one have no options at all.
    var allowsStructuredReplies: Bool {
        !refused.contains(.structuredReplies) && allowsOptionHaggling
    }

    /// Whether the client can ever negotiate extended headers through nbdtap: they need
    /// structured replies and NBD_OPT_GO (EXPORT_NAME is forbidden after them), so refusing
    /// either refuses them too, as no real server has one without the others.
    var allowsExtendedHeaders: Bool {
        !refused.contains(.extendedHeaders) && !refused.contains(.go) && allowsStructuredReplies
    }

    /// Whether meta contexts can be negotiated: SET_META_CONTEXT needs structured replies.
    var allowsMetaContexts: Bool {
        !refused.contains(.metaContexts) && allowsStructuredReplies
    }

    /// Options other than EXPORT_NAME exist only in fixed newstyle.
    var allowsOptionHaggling: Bool {
        handshake == .newstyle && !maskedHandshake.contains(.fixedNewstyle)
    }

    /// Combines a base (a profile) with options given on top of it: sets are united and
    /// flags or'ed; the scalar choices of `overrides` win where it sets them (`given`).
    func merged(with overrides: EmulationOptions, given: Given) -> EmulationOptions {
        var out = self
        out.masked.formUnion(overrides.masked)
        out.readOnly = readOnly || overrides.readOnly
        out.refused.formUnion(overrides.refused)
        out.maskedHandshake.formUnion(overrides.maskedHandshake)
        if given.handshake { out.handshake = overrides.handshake }
        if given.zeroMode { out.zeroMode = overrides.zeroMode }
        if given.fastZeroMode { out.fastZeroMode = overrides.fastZeroMode }
        return out
    }

    /// Which scalar options were given explicitly, so a profile's choice survives unless
    /// overridden.
    struct Given {
        var handshake = false
        var zeroMode = false
        var fastZeroMode = false
    }
}
