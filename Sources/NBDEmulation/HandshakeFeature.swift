import NBDProtocol

/// A newstyle handshake flag `--mask-handshake` can hide from the client.
public enum HandshakeFeature: String, CaseIterable, Hashable, Sendable, Comparable {
    case fixedNewstyle = "fixed-newstyle"
    case noZeroes = "no-zeroes"

    /// The server's handshake flag.
    public var flag: HandshakeFlags {
        switch self {
        case .fixedNewstyle: return .fixedNewstyle
        case .noZeroes: return .noZeroes
        }
    }

    /// The client flag that answers it: a client setting it when the server did not offer
    /// it is sending an unknown bit, and the spec has the server drop the connection.
    public var clientFlag: ClientFlags {
        switch self {
        case .fixedNewstyle: return .fixedNewstyle
        case .noZeroes: return .noZeroes
        }
    }

    public init?(argument: String) {
        self.init(rawValue: normalizedArgument(argument))
    }

    public static func < (a: HandshakeFeature, b: HandshakeFeature) -> Bool {
        a.flag.rawValue < b.flag.rawValue
    }
}

/// The greeting nbdtap gives the client (`--handshake`). Upstream is always reached the
/// modern way; oldstyle is emulated towards the client only.
public enum HandshakeStyle: String, CaseIterable, Hashable, Sendable {
    /// Newstyle as the upstream offers it, minus `--mask-handshake`. The default.
    case newstyle
    /// The pre-2.9.17 greeting: size and flags at once, no options at all.
    case oldstyle

    public init?(argument: String) {
        self.init(rawValue: argument.lowercased())
    }
}
