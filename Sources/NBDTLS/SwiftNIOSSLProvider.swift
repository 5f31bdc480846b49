import Foundation
import NBDProxy
import NIOCore
import NIOSSL

/// The TLS contexts, made once when the proxy starts, so bad credentials are a startup
/// error naming the file rather than a failure per connection.
public struct SwiftNIOSSLProvider: TLSProvider {
    let server: NIOSSLContext?
    let client: NIOSSLContext?
    let hostname: String?

    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    public func handler(serverSide: Bool) throws -> ChannelHandler {
        if serverSide, let server { return NIOSSLServerHandler(context: server) }
        if !serverSide, let client { return try NIOSSLClientHandler(context: client, serverHostname: hostname) }
        throw LoadError(description: "no TLS credentials for the \(serverSide ? "client" : "upstream") side")
    }

    public func isUncleanShutdown(_ error: Error) -> Bool {
        if let e = error as? NIOSSLError, case .uncleanShutdown = e { return true }
        return false
    }

    /// Loads the credentials `settings` names; `upstreamHost` is the default name the
    /// upstream's certificate must carry.
    public init(_ settings: TLSSettings, upstreamHost: String?) throws {
        func file(_ dir: String?, _ name: String, option: String) throws -> String {
            guard let dir else { throw LoadError(description: "\(option) DIR is needed (with \(name) in it)") }
            return dir + "/" + name
        }
        func load<T>(_ path: String, _ make: (String) throws -> T) throws -> T {
            do { return try make(path) } catch { throw LoadError(description: "cannot load \(path): \(error)") }
        }
        if settings.client != .off, let pskFile = settings.clientPSK {
            let keys = try PSKFile(path: pskFile)
            var c = Self.pskConfiguration()
            c.pskServerProvider = { context in
                guard let key = keys.keys[context.clientIdentity] else { throw LoadError(description: "unknown PSK identity") }
                return PSKServerIdentityResponse(key: NIOSSLSecureBytes(key))
            }
            server = try load(pskFile) { _ in try NIOSSLContext(configuration: c) }
        } else if settings.client != .off {
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
        if settings.upstream != .off, let pskFile = settings.upstreamPSK {
            let keys = try PSKFile(path: pskFile)
            guard let user = settings.upstreamUsername ?? keys.users.first, let key = keys.keys[user] else {
                throw LoadError(description: "\(pskFile) has no key for \(settings.upstreamUsername ?? "any user")")
            }
            var c = Self.pskConfiguration()
            c.pskClientProvider = { _ in PSKClientIdentityResponse(key: NIOSSLSecureBytes(key), identity: user) }
            client = try load(pskFile) { _ in try NIOSSLContext(configuration: c) }
            hostname = nil
        } else if settings.upstream != .off {
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

    /// TLS with pre-shared keys: BoringSSL has external PSKs in TLS 1.2 only, with these
    /// suites; GnuTLS peers (nbdkit, qemu) negotiate them (Docs/tls.md).
    static func pskConfiguration() -> TLSConfiguration {
        var c = TLSConfiguration.makePreSharedKeyConfiguration()
        c.maximumTLSVersion = .tlsv12
        c.minimumTLSVersion = .tlsv12
        c.cipherSuites = "ECDHE-PSK-CHACHA20-POLY1305:ECDHE-PSK-AES128-CBC-SHA:ECDHE-PSK-AES256-CBC-SHA:PSK-AES128-CBC-SHA:PSK-AES256-CBC-SHA"
        return c
    }
}

/// A psktool(1) key file: `username:hexkey` per line.
struct PSKFile {
    var users: [String] = []
    var keys: [String: [UInt8]] = [:]

    init(path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw SwiftNIOSSLProvider.LoadError(description: "cannot read the PSK file \(path)")
        }
        for (n, line) in text.split(separator: "\n").enumerated() where !line.isEmpty {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let key = Self.hex(parts[1].trimmingCharacters(in: .whitespaces)), !key.isEmpty else {
                throw SwiftNIOSSLProvider.LoadError(description: "\(path) line \(n + 1) is not username:hexkey")
            }
            users.append(String(parts[0]))
            keys[String(parts[0])] = key
        }
        if users.isEmpty { throw SwiftNIOSSLProvider.LoadError(description: "\(path) holds no key") }
    }

    static func hex(_ s: String) -> [UInt8]? {
        let chars = Array(s.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < chars.count {
            guard let v = UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            out.append(v)
            i += 2
        }
        return out
    }
}
