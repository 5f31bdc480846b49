import NBDProtocol

/// `--error write=ENOSPC,rate=10%,every=3,after=100,range=0-1M,file=/tmp/fail,seed=7`:
/// requests of the named commands are answered with the errno by nbdtap and never reach
/// the upstream, as nbdkit's error filter fails them before the plugin. All conditions
/// given must hold; `file` turns the rule on only while that file exists (nbdkit's
/// `error-file`), so a test or a person can start and stop the failures while the
/// proxy runs. Several `--error` options are several rules; the first that fires wins.
public struct ErrorRule: Hashable, Sendable {
    public var commands: Set<LayerCommand>
    public var error: ErrorValue
    /// Probability per matching request (1: every one).
    public var rate: Double = 1
    /// Only every Nth matching request (the Nth, 2Nth, ...).
    public var every: UInt64?
    /// Only after this many matching requests have passed unharmed.
    public var after: UInt64?
    /// Only requests whose range meets [lower, upper).
    public var range: Range<UInt64>?
    /// Only while this file exists.
    public var file: String?
    /// Matching requests seen so far on this connection (for every and after).
    var matched: UInt64 = 0
    var random = SplitMix64(seed: 0x6572_726f_72)

    public init(commands: Set<LayerCommand>, error: ErrorValue) {
        self.commands = commands
        self.error = error
    }

    /// The errno names nbdkit's error filter accepts, plus the rest of the spec's.
    static let errors: [(String, ErrorValue)] = [("EPERM", .eperm), ("EIO", .eio), ("ENOMEM", .enomem), ("EINVAL", .einval),
                                                  ("ENOSPC", .enospc), ("EOVERFLOW", .eoverflow), ("ENOTSUP", .enotsup),
                                                  ("ESHUTDOWN", .eshutdown)]

    public init(spec: String) throws(LayerOptionError) {
        func bad(_ expected: String) -> LayerOptionError { LayerOptionError(option: "--error", value: spec, expected: expected) }
        let items = LayerValues.pairs(spec)
        guard let first = items.first, let commands = LayerCommand.parse(first.key) else {
            throw bad("CMD=ERRNO first (CMD: \(LayerCommand.spelling))")
        }
        guard let error = Self.errors.first(where: { $0.0 == first.value.uppercased() })?.1 else {
            throw bad("an errno of \(Self.errors.map(\.0).joined(separator: ", "))")
        }
        self.init(commands: commands, error: error)
        for (key, value) in items.dropFirst() {
            switch key {
            case "rate":
                guard let p = LayerValues.probability(value) else { throw bad("rate=P with P in 0..1 or 0%..100%") }
                rate = p
            case "every":
                guard let n = UInt64(value), n > 0 else { throw bad("every=N with N ≥ 1") }
                every = n
            case "after":
                guard let n = UInt64(value) else { throw bad("after=N") }
                after = n
            case "range":
                let parts = value.split(separator: "-", omittingEmptySubsequences: false)
                guard parts.count == 2, let lo = LayerValues.size(String(parts[0])), let hi = LayerValues.size(String(parts[1])), lo < hi else {
                    throw bad("range=START-END with START < END (sizes, e.g. 0-1M)")
                }
                range = lo..<hi
            case "file":
                guard !value.isEmpty else { throw bad("file=PATH") }
                file = value
            case "seed":
                guard let s = UInt64(value) else { throw bad("seed=N") }
                random = SplitMix64(seed: s)
            default:
                throw bad("items rate=, every=, after=, range=, file=, seed= after CMD=ERRNO (got '\(key)')")
            }
        }
    }

    /// Whether this request fails. Counts it as matched when its command and range match.
    /// `command` is what the layer sees the request as (WRITEs, for a WRITE_ZEROES the
    /// emulation serves with them).
    mutating func fires(_ request: RequestHeader, as command: LayerCommand?, fileExists: (String) -> Bool) -> Bool {
        guard let c = command, commands.contains(c) else { return false }
        if let range {
            let end = request.offset &+ max(request.length, 1)
            guard request.offset < range.upperBound, end > range.lowerBound || end < request.offset else { return false }
        }
        matched += 1
        if let after, matched <= after { return false }
        if let every, matched % every != 0 { return false }
        if let file, !fileExists(file) { return false }
        return rate >= 1 || random.unit() < rate
    }
}
