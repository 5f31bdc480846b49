import NBDProtocol

/// One layer of the policy chain: what it rewrites, as a value the relay consults. The
/// layers are nbdkit's filters in nbdtap's shape: each sees the requests the layers
/// before it (nearer the client) let through, and says what it does with them; none of
/// them does I/O. `emulate` is the legacy-peer emulation options taken together (they
/// also rewrite the handshake); the others see only transmission requests, and `rate`
/// and the byte points of `disconnect` act on the relayed streams, not on messages.
public enum PolicyLayer: Hashable, Sendable {
    /// `--mask`, `--read-only`, `--no-*`, `--zeromode`, `--fastzeromode`, `--emulate`, ...
    case emulate(EmulationOptions)
    /// `--delay` (nbdkit's delay filter).
    case delay(DelayLayer)
    /// `--error`, one rule per option (nbdkit's error filter).
    case error(ErrorRule)
    /// `--max-payload N` (nbdkit's blocksize filter, `maxdata`).
    case maxPayload(UInt32)
    /// `--no-extents` (nbdkit's noextents filter).
    case noExtents
    /// `--disconnect-after`.
    case disconnect(DisconnectLayer)
    /// `--rate` (nbdkit's rate filter).
    case rate(RateLayer)

    /// The option that made the layer, for the log and the docs.
    public var name: String {
        switch self {
        case .emulate: return "emulate"
        case .delay: return "delay"
        case .error: return "error"
        case .maxPayload: return "max-payload"
        case .noExtents: return "no-extents"
        case .disconnect: return "disconnect-after"
        case .rate: return "rate"
        }
    }
}
