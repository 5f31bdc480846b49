import NIOSSL

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
    /// Check the client's certificate against ca-cert.pem (`--tls-verify-peer`).
    public var verifyPeer = false
    public var upstream: Mode = .off
    public var upstreamCertificates: String?
    /// The name the upstream's certificate must carry (default: the upstream's host, or
    /// "localhost" for a Unix socket).
    public var upstreamHostname: String?

    public init() {}

    public var isActive: Bool { client != .off || upstream != .off }
}

/// The TLS contexts, made once when the proxy starts, so bad credentials are a startup
/// error naming the file rather than a failure per connection.
struct TLSContexts {
    let server: NIOSSLContext?
    let client: NIOSSLContext?
    let hostname: String?

    struct LoadError: Error, CustomStringConvertible {
        var description: String
    }

    init(_ settings: TLSSettings, upstreamHost: String?) throws {
        func file(_ dir: String?, _ name: String, option: String) throws -> String {
            guard let dir else { throw LoadError(description: "\(option) DIR is needed (with \(name) in it)") }
            return dir + "/" + name
        }
        func load<T>(_ path: String, _ make: (String) throws -> T) throws -> T {
            do { return try make(path) } catch { throw LoadError(description: "cannot load \(path): \(error)") }
        }
        if settings.client != .off {
            let dir = settings.clientCertificates
            let chain = try load(try file(dir, "server-cert.pem", option: "--tls-certificates")) { try NIOSSLCertificate.fromPEMFile($0) }
            let key = try load(try file(dir, "server-key.pem", option: "--tls-certificates")) { try NIOSSLPrivateKey(file: $0, format: .pem) }
            var c = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            if settings.verifyPeer {
                c.certificateVerification = .noHostnameVerification
                c.trustRoots = .file(try file(dir, "ca-cert.pem", option: "--tls-certificates"))
            }
            server = try load(dir ?? "") { _ in try NIOSSLContext(configuration: c) }
        } else {
            server = nil
        }
        if settings.upstream != .off {
            var c = TLSConfiguration.makeClientConfiguration()
            let dir = settings.upstreamCertificates
            c.trustRoots = .file(try file(dir, "ca-cert.pem", option: "--upstream-tls-certificates"))
            if let dir, let chain = try? NIOSSLCertificate.fromPEMFile(dir + "/client-cert.pem") {
                c.certificateChain = chain.map { .certificate($0) }
                c.privateKey = .privateKey(try load(dir + "/client-key.pem") { try NIOSSLPrivateKey(file: $0, format: .pem) })
            }
            client = try load(dir ?? "") { _ in try NIOSSLContext(configuration: c) }
            hostname = settings.upstreamHostname ?? upstreamHost ?? "localhost"
        } else {
            client = nil
            hostname = nil
        }
    }
}
