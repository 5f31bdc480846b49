/// How WRITE_ZEROES is offered and served: nbdkit's nozero filter `zeromode`.
///
/// nbdkit's default is `none`; nbdtap's is `passthrough`, which nbdkit has no name for,
/// because a proxy given no options must change nothing. `plugin` differs from
/// `passthrough` when the upstream lacks write zeroes: nbdkit's core then emulates them
/// (measured: a plugin without zero support still shows SEND_WRITE_ZEROES under
/// `zeromode=plugin`), and so does nbdtap.
public enum ZeroMode: String, CaseIterable, Hashable, Sendable {
    /// Write zeroes exactly as the upstream offers them (nbdtap only; the default).
    case passthrough
    /// Not advertised; WRITE_ZEROES fails with EINVAL as on a server without it.
    case none
    /// Advertised and served by writing zero buffers upstream.
    case emulate
    /// Forwarded with NBD_CMD_FLAG_NO_HOLE forced (nbdkit: MAY_TRIM cleared).
    case notrim
    /// Forwarded unchanged; emulated if the upstream has none.
    case plugin

    /// The four values `--zeromode` takes, as nbdkit spells them.
    public static let arguments: [ZeroMode] = [.none, .emulate, .notrim, .plugin]

    public init?(argument: String) {
        guard let mode = ZeroMode(rawValue: argument.lowercased()), mode != .passthrough else { return nil }
        self = mode
    }
}

/// How NBD_CMD_FLAG_FAST_ZERO is offered and served: nbdkit's nozero `fastzeromode`.
public enum FastZeroMode: String, CaseIterable, Hashable, Sendable {
    /// SEND_FAST_ZERO not advertised.
    case none
    /// Advertised; every fast zero fails with NBD_ENOTSUP at once, upstream not asked.
    case slow
    /// Advertised; the flag is stripped, so the upstream does a normal (maybe slow) zero.
    /// nbdkit calls this unsafe: it breaks the spec's promise that fast zeroes are fast.
    case ignore
    /// Emulated zeroes: advertised and always failing; otherwise whatever the upstream offers.
    case `default`

    public init?(argument: String) {
        self.init(rawValue: argument.lowercased())
    }
}
