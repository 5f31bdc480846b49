import NBDProtocol

/// The command names a layer option uses for the commands it applies to: nbdkit's filter
/// parameter names (`delay-read`, `error-pwrite`, ...) in the NBD spec's words, so
/// `read`, `write`, `zero`, `trim`, `flush`, `extents`, `cache`; `all` is every one.
public enum LayerCommand: String, CaseIterable, Hashable, Sendable {
    case read, write, zero, trim, flush, extents, cache

    public init?(_ command: NBDCommand) {
        switch command {
        case .read: self = .read
        case .write: self = .write
        case .writeZeroes: self = .zero
        case .trim: self = .trim
        case .flush: self = .flush
        case .blockStatus: self = .extents
        case .cache: self = .cache
        case .disc, .resize, .unknown: return nil
        }
    }

    /// `write`, `zero+trim`, `all`: the commands a spelling names, or nil.
    static func parse(_ text: String) -> Set<LayerCommand>? {
        if text == "all" { return Set(allCases) }
        var out: Set<LayerCommand> = []
        for name in text.split(separator: "+", omittingEmptySubsequences: false) {
            guard let c = LayerCommand(rawValue: String(name)) else { return nil }
            out.insert(c)
        }
        return out.isEmpty ? nil : out
    }

    static let spelling = "read, write, zero, trim, flush, extents, cache or all (several joined with +)"
}
