/// An NBD URI as the NBD URI spec (doc/uri.md) and libnbd write them:
/// `nbd://host[:port]/export` and `nbd+unix:///export?socket=PATH`. TLS schemes are
/// recognised so they can be refused by name rather than misread.
public struct NBDURI: Hashable, Sendable, CustomStringConvertible {
    public enum Endpoint: Hashable, Sendable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    public var endpoint: Endpoint
    /// The export name: the path without its leading `/` (so `nbd://h//x` names `/x`).
    public var exportName: String
    public var tls: Bool

    public static let defaultPort = 10809

    public init(endpoint: Endpoint, exportName: String = "", tls: Bool = false) {
        self.endpoint = endpoint
        self.exportName = exportName
        self.tls = tls
    }

    public enum ParseError: Error, Hashable, CustomStringConvertible {
        case unknownScheme(String)
        case missingSocket(String)
        case badPort(String)
        case malformed(String)

        public var description: String {
            switch self {
            case .unknownScheme(let u): return "\(u): scheme must be nbd://, nbds://, nbd+unix:// or nbds+unix://"
            case .missingSocket(let u): return "\(u): nbd+unix:// needs ?socket=PATH"
            case .badPort(let u): return "\(u): bad port"
            case .malformed(let u): return "\(u): not an NBD URI"
            }
        }
    }

    public init(parsing text: String) throws(ParseError) {
        guard let schemeEnd = text.firstRange(of: "://") else { throw .malformed(text) }
        let scheme = String(text[..<schemeEnd.lowerBound]).lowercased()
        var rest = String(text[schemeEnd.upperBound...])
        var query = ""
        if let q = rest.firstIndex(of: "?") {
            query = String(rest[rest.index(after: q)...])
            rest = String(rest[..<q])
        }
        let authority: String
        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            authority = String(rest[..<slash])
            path = String(rest[rest.index(after: slash)...])
        } else {
            authority = rest
        }
        let export = NBDURI.percentDecode(path)
        var params: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            params[NBDURI.percentDecode(String(kv[0]))] = kv.count > 1 ? NBDURI.percentDecode(String(kv[1])) : ""
        }
        switch scheme {
        case "nbd", "nbds":
            var host = authority
            var port = NBDURI.defaultPort
            if host.hasPrefix("[") {
                // IPv6 literal: [::1]:port
                guard let close = host.firstIndex(of: "]") else { throw .malformed(text) }
                let after = host[host.index(after: close)...]
                if after.hasPrefix(":") {
                    guard let p = Int(after.dropFirst()), (0...65535).contains(p) else { throw .badPort(text) }
                    port = p
                }
                host = String(host[host.index(after: host.startIndex)..<close])
            } else if let colon = host.lastIndex(of: ":") {
                guard let p = Int(host[host.index(after: colon)...]), (0...65535).contains(p) else { throw .badPort(text) }
                port = p
                host = String(host[..<colon])
            }
            if host.isEmpty { host = "localhost" }
            self.init(endpoint: .tcp(host: host, port: port), exportName: export, tls: scheme == "nbds")
        case "nbd+unix", "nbds+unix":
            guard let socket = params["socket"], !socket.isEmpty else { throw .missingSocket(text) }
            self.init(endpoint: .unix(path: socket), exportName: export, tls: scheme == "nbds+unix")
        default:
            throw .unknownScheme(text)
        }
    }

    public var description: String {
        let export = NBDURI.percentEncode(exportName)
        switch endpoint {
        case .tcp(let host, let port):
            let h = host.contains(":") ? "[\(host)]" : host
            return "\(tls ? "nbds" : "nbd")://\(h):\(port)/\(export)"
        case .unix(let path):
            return "\(tls ? "nbds+unix" : "nbd+unix"):///\(export)?socket=\(NBDURI.percentEncode(path, keepSlash: true))"
        }
    }

    static func percentDecode(_ s: String) -> String {
        var bytes: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let c = it.popFirst() {
            if c == UInt8(ascii: "%"), it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(v)
                it = it.dropFirst(2)
            } else {
                bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func percentEncode(_ s: String, keepSlash: Bool = false) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            case UInt8(ascii: "/") where keepSlash:
                out += "/"
            default:
                out += "%" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true)
            }
        }
        return out
    }
}

extension NBDURI.Endpoint {
    /// Whether two endpoints name the same listening address: the same Unix socket path
    /// (after removing `.` and `..`), or the same TCP port on the same host, where
    /// `localhost`, `127.0.0.1` and `::1` count as one loopback host.
    public func isSameAddress(as other: NBDURI.Endpoint) -> Bool {
        switch (self, other) {
        case (.unix(let a), .unix(let b)):
            return Self.normalized(a) == Self.normalized(b)
        case (.tcp(let h1, let p1), .tcp(let h2, let p2)):
            guard p1 == p2 && p1 != 0 else { return false }
            let loopback: Set<String> = ["localhost", "127.0.0.1", "::1", "[::1]", ""]
            return h1.lowercased() == h2.lowercased() || (loopback.contains(h1.lowercased()) && loopback.contains(h2.lowercased()))
        case (.unix, .tcp), (.tcp, .unix):
            return false
        }
    }

    /// A path with `.`, `..` and repeated slashes resolved textually (no file access).
    static func normalized(_ path: String) -> String {
        var parts: [Substring] = []
        for p in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch p {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(p)
            }
        }
        return (path.hasPrefix("/") ? "/" : "") + parts.joined(separator: "/")
    }
}
