/// Reading the options from their command-line spelling. The CLI may hand over the raw
/// tokens (`init(arguments:)`) or parse each value itself with the `parse…` functions;
/// both report the offending input as an `EmulationOptionError`.
extension EmulationOptions {
    /// Options that take a value, as `--opt value` or `--opt=value`.
    static let valueOptions: Set<String> = ["--mask", "--mask-handshake", "--handshake", "--zeromode", "--fastzeromode", "--emulate"]

    /// Parses emulation options from command-line tokens, e.g.
    /// `["--emulate", "nbd-server-3.24", "--mask=trim,fua", "--read-only"]`.
    /// `--mask` and `--mask-handshake` accumulate; for `--handshake`, `--zeromode`,
    /// `--fastzeromode` and `--emulate` the last one wins. A profile is the base the other
    /// options are added to, wherever `--emulate` appears.
    public init(arguments: [String]) throws(EmulationOptionError) {
        var explicit = EmulationOptions()
        var given = Given()
        var profile: Profile?
        var i = 0
        while i < arguments.count {
            let token = arguments[i]
            i += 1
            let (name, inlineValue) = splitInlineValue(token)
            if Self.valueOptions.contains(name) {
                let value: String
                if let inlineValue {
                    value = inlineValue
                } else if i < arguments.count {
                    value = arguments[i]
                    i += 1
                } else {
                    throw .missingValue(option: name)
                }
                switch name {
                case "--mask": explicit.masked.formUnion(try Self.parseMask(value))
                case "--mask-handshake": explicit.maskedHandshake.formUnion(try Self.parseMaskHandshake(value))
                case "--handshake":
                    explicit.handshake = try Self.parseHandshake(value)
                    given.handshake = true
                case "--zeromode":
                    explicit.zeroMode = try Self.parseZeroMode(value)
                    given.zeroMode = true
                case "--fastzeromode":
                    explicit.fastZeroMode = try Self.parseFastZeroMode(value)
                    given.fastZeroMode = true
                case "--emulate": profile = try Self.parseProfile(value)
                default: throw .unknownArgument(token)
                }
                continue
            }
            if let inlineValue { throw .unexpectedValue(option: name, value: inlineValue) }
            if name == "--read-only" {
                explicit.readOnly = true
            } else if let refusal = RefusableOption.allCases.first(where: { $0.argument == name }) {
                explicit.refused.insert(refusal)
            } else {
                throw .unknownArgument(token)
            }
        }
        self = (profile?.options ?? EmulationOptions()).merged(with: explicit, given: given)
    }

    /// `--mask` value: a comma-separated list of `MaskFeature` names.
    public static func parseMask(_ value: String) throws(EmulationOptionError) -> Set<MaskFeature> {
        var out: Set<MaskFeature> = []
        for item in try listItems(value, option: "--mask") {
            guard let feature = MaskFeature(argument: item) else { throw .unknownFeature(item) }
            out.insert(feature)
        }
        return out
    }

    /// `--mask-handshake` value: a comma-separated list of `HandshakeFeature` names.
    public static func parseMaskHandshake(_ value: String) throws(EmulationOptionError) -> Set<HandshakeFeature> {
        var out: Set<HandshakeFeature> = []
        for item in try listItems(value, option: "--mask-handshake") {
            guard let feature = HandshakeFeature(argument: item) else { throw .unknownHandshakeFeature(item) }
            out.insert(feature)
        }
        return out
    }

    public static func parseHandshake(_ value: String) throws(EmulationOptionError) -> HandshakeStyle {
        guard let style = HandshakeStyle(argument: value) else { throw .unknownHandshakeStyle(value) }
        return style
    }

    public static func parseZeroMode(_ value: String) throws(EmulationOptionError) -> ZeroMode {
        guard let mode = ZeroMode(argument: value) else { throw .unknownZeroMode(value) }
        return mode
    }

    public static func parseFastZeroMode(_ value: String) throws(EmulationOptionError) -> FastZeroMode {
        guard let mode = FastZeroMode(argument: value) else { throw .unknownFastZeroMode(value) }
        return mode
    }

    public static func parseProfile(_ value: String) throws(EmulationOptionError) -> Profile {
        guard let profile = Profile.named(value) else { throw .unknownProfile(value) }
        return profile
    }

    /// Splits a comma list, trimming spaces; an empty item is an error rather than
    /// silently nothing, since `--mask ''` most likely lost its value to the shell.
    static func listItems(_ value: String, option: String) throws(EmulationOptionError) -> [String] {
        let items = value.split(separator: ",", omittingEmptySubsequences: false)
            .map { String($0.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed()) }
        guard !items.contains(where: \.isEmpty) else { throw .emptyListItem(option: option, value: value) }
        return items
    }
}
