#if canImport(Glibc)
import Glibc
#endif
import NBDProtocol

/// A socket call that failed: which call, on which endpoint, and the errno it returned.
public struct SocketCallError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let endpoint: String
    public let errno: Int32
    /// The resolver's own message (getaddrinfo does not report through errno).
    public var detail: String?

    public init(call: String, endpoint: String, errno: Int32, detail: String? = nil) {
        self.call = call
        self.endpoint = endpoint
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        if let detail { return "\(call) \(endpoint): \(detail)" }
        return "\(call) \(endpoint): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Listening and connected sockets made by nbdtap itself and handed to NIO afterwards.
///
/// Why not NIO's bootstraps: the idle poller (IdlePolling.swift) polls the two sockets of
/// a connection directly, and NIO does not expose the descriptors of channels it creates.
/// Sockets made here keep their descriptors known; NIO still does all the I/O on them.
enum Sockets {
    static func describe(_ e: NBDURI.Endpoint) -> String {
        switch e {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): return path
        }
    }

    /// A listening socket (close-on-exec, blocking: the acceptor polls it) and the endpoint
    /// it is bound to (the real port when port 0 was asked for).
    static func listen(_ endpoint: NBDURI.Endpoint, backlog: Int32) throws -> (fd: Int32, bound: NBDURI.Endpoint) {
        let name = describe(endpoint)
        switch endpoint {
        case .unix(let path):
            let fd = try make(AF_UNIX, "socket", name)
            do {
                // Like a server restarted on the same path: remove a stale socket (nobody
                // accepts on it), never a live one (another server's, or another nbdtap's:
                // taking it over would cut that server off) and never a regular file.
                var st = stat()
                if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK {
                    if isAccepting(path, name) { throw SocketCallError(call: "bind", endpoint: name, errno: EADDRINUSE) }
                    unlink(path)
                }
                try withUnixAddress(path, name) { addr, len in
                    try check(bind(fd, addr, len), "bind", name)
                }
                chmod(path, 0o600)
                try check(Glibc.listen(fd, backlog), "listen", name)
                return (fd, endpoint)
            } catch {
                close(fd)
                throw error
            }
        case .tcp(let host, let port):
            var lastError = SocketCallError(call: "getaddrinfo", endpoint: name, errno: EADDRNOTAVAIL)
            for (family, addr) in try resolve(host, port, passive: true, name) {
                let fd = try make(family, "socket", name)
                var one: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                let ok = addr.withUnsafeBytes { raw in
                    bind(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count)) == 0
                        && Glibc.listen(fd, backlog) == 0
                }
                if ok { return (fd, .tcp(host: host, port: boundPort(fd) ?? port)) }
                lastError = SocketCallError(call: "bind", endpoint: name, errno: errno)
                close(fd)
            }
            throw lastError
        }
    }

    /// Whether something accepts connections on the Unix socket at `path` (a connect that
    /// succeeds; ECONNREFUSED means a stale socket file).
    static func isAccepting(_ path: String, _ name: String) -> Bool {
        guard let fd = try? make(AF_UNIX, "socket", name) else { return false }
        defer { close(fd) }
        var connected = false
        try? withUnixAddress(path, name) { addr, len in connected = Glibc.connect(fd, addr, len) == 0 }
        return connected
    }

    /// The file identity of a socket this process bound, so it removes its own socket on
    /// exit and nothing that replaced it.
    struct FileIdentity: Equatable {
        var device: UInt64
        var inode: UInt64

        init?(path: String) {
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK else { return nil }
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
        }
    }

    /// A connected, non-blocking socket. Blocks the calling thread for at most
    /// `timeoutMilliseconds` (run it on a thread pool, not on an event loop).
    static func connect(_ endpoint: NBDURI.Endpoint, timeoutMilliseconds: Int32) throws -> Int32 {
        let name = describe(endpoint)
        switch endpoint {
        case .unix(let path):
            let fd = try make(AF_UNIX, "socket", name)
            do {
                // A Unix connect completes at once or waits for room in the backlog; the
                // send timeout bounds that wait.
                var tv = timeval(tv_sec: Int(timeoutMilliseconds / 1000), tv_usec: Int(timeoutMilliseconds % 1000) * 1000)
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                try withUnixAddress(path, name) { addr, len in
                    try check(Glibc.connect(fd, addr, len), "connect", name)
                }
                tv = timeval()
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                try setNonBlocking(fd, name)
                return fd
            } catch {
                close(fd)
                throw error
            }
        case .tcp(let host, let port):
            var lastError = SocketCallError(call: "getaddrinfo", endpoint: name, errno: EADDRNOTAVAIL)
            for (family, addr) in try resolve(host, port, passive: false, name) {
                let fd = try make(family, "socket", name)
                do {
                    try setNonBlocking(fd, name)
                    let r = addr.withUnsafeBytes { raw in
                        Glibc.connect(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
                    }
                    if r != 0 {
                        guard errno == EINPROGRESS else { throw SocketCallError(call: "connect", endpoint: name, errno: errno) }
                        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                        let n = poll(&p, 1, timeoutMilliseconds)
                        if n == 0 { throw SocketCallError(call: "connect", endpoint: name, errno: ETIMEDOUT) }
                        var soError: Int32 = 0
                        var len = socklen_t(MemoryLayout<Int32>.size)
                        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
                        if soError != 0 { throw SocketCallError(call: "connect", endpoint: name, errno: soError) }
                    }
                    return fd
                } catch let e as SocketCallError {
                    lastError = e
                    close(fd)
                }
            }
            throw lastError
        }
    }

    /// Unix-socket send and receive buffers of 1 MiB (the kernel caps them at
    /// net.core.wmem_max and rmem_max; Debian's default is 208 KiB). Why: a 256 KiB READ
    /// reply then fits in the socket at once, so the server and nbdtap write it in one go
    /// instead of waking each other per 208 KiB: nbdcopy 1 GiB reads through nbdtap went
    /// +10-15% (4 alternated rounds, medians 1,930 vs 1,730 MiB/s at one connection);
    /// writes did not change. TCP sockets are left to the kernel's autotuning, which a
    /// fixed size would turn off.
    static func enlargeUnixBuffers(_ fd: Int32) {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let isUnix = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) == 0 }
        } && Int32(storage.ss_family) == AF_UNIX
        guard isUnix else { return }
        var size: Int32 = 1 << 20
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    private static func make(_ family: Int32, _ call: String, _ name: String) throws -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw SocketCallError(call: call, endpoint: name, errno: errno) }
        return fd
    }

    private static func check(_ result: Int32, _ call: String, _ name: String) throws {
        if result != 0 { throw SocketCallError(call: call, endpoint: name, errno: errno) }
    }

    private static func setNonBlocking(_ fd: Int32, _ name: String) throws {
        let flags = fcntl(fd, F_GETFL)
        try check(flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK), "fcntl", name)
    }

    private static func withUnixAddress(_ path: String, _ name: String,
                                        _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> Void) throws {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else { throw SocketCallError(call: "bind", endpoint: name, errno: ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        try withUnsafePointer(to: &addr) { p in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                try body(sa, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    /// Addresses for `host`, each as its family and the bytes of its sockaddr.
    private static func resolve(_ host: String, _ port: Int, passive: Bool, _ name: String) throws -> [(Int32, [UInt8])] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)
        var list: UnsafeMutablePointer<addrinfo>?
        let r = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &list)
        guard r == 0, let first = list else {
            throw SocketCallError(call: "getaddrinfo", endpoint: name, errno: EADDRNOTAVAIL, detail: String(cString: gai_strerror(r)))
        }
        defer { freeaddrinfo(first) }
        var out: [(Int32, [UInt8])] = []
        var cur: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cur {
            if let a = ai.pointee.ai_addr {
                out.append((ai.pointee.ai_family, Array(UnsafeRawBufferPointer(start: a, count: Int(ai.pointee.ai_addrlen)))))
            }
            cur = ai.pointee.ai_next
        }
        return out
    }

    private static func boundPort(_ fd: Int32) -> Int? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) } }
        case AF_INET6:
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) } }
        default:
            return nil
        }
    }
}
