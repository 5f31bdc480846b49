/// A bad emulation option, carrying the input that was wrong so the message can quote it.
public enum EmulationOptionError: Error, Hashable, Sendable, CustomStringConvertible {
    /// `--mask` named no known feature.
    case unknownFeature(String)
    /// `--mask-handshake` named no known handshake flag.
    case unknownHandshakeFeature(String)
    /// `--handshake` value not newstyle or oldstyle.
    case unknownHandshakeStyle(String)
    /// `--zeromode` value not none, emulate, notrim or plugin.
    case unknownZeroMode(String)
    /// `--fastzeromode` value not none, slow, ignore or default.
    case unknownFastZeroMode(String)
    /// `--emulate` named no profile.
    case unknownProfile(String)
    /// A list option (`--mask`, `--mask-handshake`) with an empty item, e.g. `trim,,fua`.
    case emptyListItem(option: String, value: String)
    /// An option that needs a value came last.
    case missingValue(option: String)
    /// A flag given a value (`--read-only=yes`).
    case unexpectedValue(option: String, value: String)
    /// Not an emulation option at all.
    case unknownArgument(String)

    public var description: String {
        switch self {
        case .unknownFeature(let v):
            return "unknown --mask feature '\(v)' (known: \(MaskFeature.allCases.map(\.name).joined(separator: ", ")))"
        case .unknownHandshakeFeature(let v):
            return "unknown --mask-handshake flag '\(v)' (known: \(HandshakeFeature.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .unknownHandshakeStyle(let v):
            return "unknown --handshake style '\(v)' (known: \(HandshakeStyle.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .unknownZeroMode(let v):
            return "unknown --zeromode '\(v)' (known: \(ZeroMode.arguments.map(\.rawValue).joined(separator: ", ")))"
        case .unknownFastZeroMode(let v):
            return "unknown --fastzeromode '\(v)' (known: \(FastZeroMode.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .unknownProfile(let v):
            return "unknown --emulate profile '\(v)' (known: \(Profile.all.map(\.name).joined(separator: ", ")))"
        case .emptyListItem(let option, let value):
            return "\(option) '\(value)' has an empty item"
        case .missingValue(let option):
            return "\(option) needs a value"
        case .unexpectedValue(let option, let value):
            return "\(option) takes no value (got '\(value)')"
        case .unknownArgument(let v):
            return "'\(v)' is not an emulation option"
        }
    }
}
