import NBDProtocol

/// Decisions for the newstyle greeting and the client's answer to it (`--mask-handshake`).
extension EmulationOptions {
    /// The handshake flags shown to the client in place of the upstream's.
    public func handshakeFlags(upstream: HandshakeFlags) -> HandshakeFlags {
        var flags = upstream
        for feature in maskedHandshake { flags.remove(feature.flag) }
        return flags
    }

    /// Whether the client's flags may go on to the upstream. A client setting the answer to
    /// a flag nbdtap hid is sending a bit the emulated server does not know, and the spec
    /// says the server then drops the connection; so should the proxy. Otherwise the flags
    /// are forwarded unchanged: the upstream offered at least what the client saw.
    public func acceptsClientFlags(_ flags: ClientFlags) -> Bool {
        maskedHandshake.allSatisfy { !flags.contains($0.clientFlag) }
    }
}
