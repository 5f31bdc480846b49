/// What TLS termination needs from a TLS library, so the relay does not depend on one
/// (NBDTLS gives swift-nio-ssl's; the fuzz targets and the tests of the relay build without
/// BoringSSL).
import NIOCore

public protocol TLSProvider: Sendable {
    /// A handler that speaks TLS on a channel already connected: as the server on the
    /// client's side, as the client on the upstream's.
    func handler(serverSide: Bool) throws -> ChannelHandler
    /// Whether the error says the peer closed its socket without TLS's close_notify.
    func isUncleanShutdown(_ error: Error) -> Bool
}

/// TLS termination (`--tls`, `--upstream-tls`): nbdtap answers the client's STARTTLS itself
/// and speaks TLS with it, and/or starts TLS with the upstream itself, so the log,
/// statistics, layers and `--pcap` see plaintext. Off on both sides, STARTTLS passes through
/// opaque as before. Credentials use the directory layout nbdkit and qemu's
/// `tls-creds-x509` read: `ca-cert.pem`, `server-cert.pem`, `server-key.pem` for the side
/// that serves, `ca-cert.pem` and optionally `client-cert.pem`, `client-key.pem` for the
/// side that connects.
public struct TLSSettings: Sendable {
    public enum Mode: String, Sendable, CaseIterable {
        /// No TLS on this side (the client's STARTTLS passes through when both are off).
        case off
        /// TLS when the peer wants it (client side) or the upstream offers it (upstream).
        case on
        /// Nothing but TLS: a client asking anything else first gets NBD_REP_ERR_TLS_REQD;
        /// an upstream refusing STARTTLS ends the connection.
        case require
    }

    public var client: Mode = .off
    public var clientCertificates: String?
    /// A psktool(1) file (`username:hexkey` lines): TLS with pre-shared keys instead of
    /// certificates, as nbdkit's `--tls-psk` and qemu's `tls-creds-psk` read it.
    public var clientPSK: String?
    /// Check the client's certificate against ca-cert.pem (`--tls-verify-peer`).
    public var verifyPeer = false
    public var upstream: Mode = .off
    public var upstreamCertificates: String?
    public var upstreamPSK: String?
    /// The PSK identity to use (default: the file's first user).
    public var upstreamUsername: String?
    /// The name the upstream's certificate must carry (default: the upstream's host, or
    /// "localhost" for a Unix socket).
    public var upstreamHostname: String?

    public init() {}

    public var isActive: Bool { client != .off || upstream != .off }
}

