import NBDProtocol

/// Building the chain from the command line's tokens in the order typed, so the layers
/// stack as given (nbdkit's `--filter` order); the emulation options form one layer,
/// placed where the first of them appears.
extension PolicyChain {
    /// The layer options, each taking a value except `--no-extents`.
    static let layerOptions: Set<String> = ["--delay", "--error", "--rate", "--max-payload", "--disconnect-after"]

    public enum ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        case layer(LayerOptionError)
        case emulation(EmulationOptionError)

        public var description: String {
            switch self {
            case .layer(let e): return "\(e)"
            case .emulation(let e): return "\(e)"
            }
        }
    }

    /// `tokens` may hold other options: only layer and emulation options are read (an
    /// option's value is the next token or follows `=`), everything else is skipped.
    public init(arguments tokens: [String]) throws(ParseError) {
        var layers: [PolicyLayer] = []
        var emulationTokens: [String] = []
        var emulationAt: Int?
        var i = 0
        while i < tokens.count {
            let token = tokens[i]
            i += 1
            let (name, inline) = splitInlineValue(token)
            if name == "--no-extents" {
                layers.append(.noExtents)
                continue
            }
            let isEmulation = EmulationOptions.valueOptions.contains(name) || name == "--read-only"
                || RefusableOption.allCases.contains { $0.argument == name }
            if isEmulation {
                if emulationAt == nil { emulationAt = layers.count }
                emulationTokens.append(token)
                if inline == nil, EmulationOptions.valueOptions.contains(name), i < tokens.count {
                    emulationTokens.append(tokens[i])
                    i += 1
                }
                continue
            }
            guard Self.layerOptions.contains(name) else { continue }
            guard let value = inline ?? (i < tokens.count ? tokens[i] : nil) else {
                throw .layer(LayerOptionError(option: name, value: "", expected: "a value"))
            }
            if inline == nil { i += 1 }
            do {
                layers.append(try Self.layer(name, value))
            } catch {
                throw .layer(error)
            }
        }
        if let at = emulationAt {
            do {
                layers.insert(.emulate(try EmulationOptions(arguments: emulationTokens)), at: at)
            } catch {
                throw .emulation(error)
            }
        }
        self.init(layers)
    }

    static func layer(_ name: String, _ value: String) throws(LayerOptionError) -> PolicyLayer {
        switch name {
        case "--delay": return .delay(try DelayLayer(spec: value))
        case "--error": return .error(try ErrorRule(spec: value))
        case "--rate": return .rate(try RateLayer(spec: value))
        case "--disconnect-after": return .disconnect(try DisconnectLayer(spec: value))
        default:
            // --max-payload: at least the spec's smallest maximum, at most 32 MiB (what
            // every server must accept, and the size a piece buffer may be).
            guard let n = LayerValues.size(value), n >= UInt64(ZeroWrites.minimumPieceLength), n <= 32 << 20 else {
                throw LayerOptionError(option: name, value: value, expected: "a size from 512 to 32M (e.g. 256k)")
            }
            return .maxPayload(UInt32(n))
        }
    }
}
