/// `--delay read=20ms,write=20ms,zero=5ms,jitter=2ms`: each request of a named command
/// waits before it goes upstream, as nbdkit's delay filter sleeps before calling the
/// plugin. The wait starts when nbdtap reads the request, and requests in flight wait at
/// the same time (their delays overlap, as in nbdkit's parallel thread model), so the
/// client sees each reply at least the delay later than without the layer.
public struct DelayLayer: Hashable, Sendable {
    /// Nanoseconds per command; commands not named are not delayed.
    public var delays: [LayerCommand: UInt64]
    /// Up to this many nanoseconds more, uniformly at random, per request.
    public var jitter: UInt64
    var random: SplitMix64

    public init(delays: [LayerCommand: UInt64], jitter: UInt64 = 0, seed: UInt64 = 0x6e62_6474_6170) {
        self.delays = delays
        self.jitter = jitter
        self.random = SplitMix64(seed: seed)
    }

    /// Parses `CMD=DURATION,...[,jitter=DURATION][,seed=N]`.
    public init(spec: String) throws(LayerOptionError) {
        var delays: [LayerCommand: UInt64] = [:]
        var jitter: UInt64 = 0
        var seed: UInt64 = 0x6e62_6474_6170
        for (key, value) in LayerValues.pairs(spec) {
            let bad = LayerOptionError(option: "--delay", value: spec,
                                       expected: "CMD=DURATION items (CMD: \(LayerCommand.spelling); DURATION: 20ms, 0.5s, 100us), optionally jitter=DURATION and seed=N")
            switch key {
            case "jitter":
                guard let d = LayerValues.duration(value) else { throw bad }
                jitter = d
            case "seed":
                guard let s = UInt64(value) else { throw bad }
                seed = s
            default:
                guard let commands = LayerCommand.parse(key), let d = LayerValues.duration(value) else { throw bad }
                for c in commands { delays[c] = d }
            }
        }
        if delays.isEmpty {
            throw LayerOptionError(option: "--delay", value: spec, expected: "at least one CMD=DURATION (e.g. write=20ms)")
        }
        self.init(delays: delays, jitter: jitter, seed: seed)
    }

    /// The wait for one request, in nanoseconds (0: none).
    mutating func delay(for command: LayerCommand?) -> UInt64 {
        guard let command, let d = delays[command] else { return 0 }
        return jitter == 0 ? d : d + random.next() % (jitter + 1)
    }
}

/// A small deterministic generator (Steele, Lea and Flood's SplitMix64), so a layer that
/// draws at random is still a value with its state inside and a run can be repeated
/// with the same seed.
struct SplitMix64: Hashable, Sendable {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A double in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
