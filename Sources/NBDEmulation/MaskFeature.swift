import NBDProtocol

/// A transmission flag `--mask` can hide, by the name the option takes. Masking only ever
/// clears a flag: nbdtap cannot give a client a capability its upstream lacks (zero
/// emulation, in ZeroMode, is the one exception and has its own options).
public enum MaskFeature: String, CaseIterable, Hashable, Sendable, Comparable {
    case fastZero = "fast-zero"
    case writeZeroes = "write-zeroes"
    case trim
    case fua
    case flush
    case cache
    case df
    case multiConn = "multi-conn"
    case rotational
    case blockStatusPayload = "block-status-payload"

    /// The `--mask` spelling.
    public var name: String { rawValue }

    /// The transmission flag this feature hides. Masking write-zeroes also hides fast zero
    /// (see `hiddenFlags`), because the spec forbids SEND_FAST_ZERO without SEND_WRITE_ZEROES.
    public var flag: TransmissionFlags {
        switch self {
        case .fastZero: return .sendFastZero
        case .writeZeroes: return .sendWriteZeroes
        case .trim: return .sendTrim
        case .fua: return .sendFUA
        case .flush: return .sendFlush
        case .cache: return .sendCache
        case .df: return .sendDF
        case .multiConn: return .canMultiConn
        case .rotational: return .rotational
        case .blockStatusPayload: return .blockStatusPayload
        }
    }

    /// Everything masking this feature clears from the shown flags.
    public var hiddenFlags: TransmissionFlags {
        switch self {
        case .writeZeroes: return [.sendWriteZeroes, .sendFastZero]
        case .fastZero, .trim, .fua, .flush, .cache, .df, .multiConn, .rotational, .blockStatusPayload:
            return flag
        }
    }

    /// Accepts the documented spelling and, because nbdkit's logs spell them with
    /// underscores (`fast_zero=`), the same name with `_` and in any case.
    public init?(argument: String) {
        let normalized = normalizedArgument(argument)
        self.init(rawValue: normalized)
    }

    /// Bit order, so listings and the canonical `--mask` value are stable.
    public static func < (a: MaskFeature, b: MaskFeature) -> Bool {
        a.flag.rawValue < b.flag.rawValue
    }
}
