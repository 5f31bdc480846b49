import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The endpoint's limits, as Docs/metrics.md gives them.
enum MetricsLimits {
    static let connections = 16
}

/// A TCP connection to 127.0.0.1:port that sends nothing (it holds one of the endpoint's places).
func openSocket(_ port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard withLoopback(fd, port, connect) == 0 else {
        close(fd)
        return nil
    }
    return fd
}

/// A response as the metrics tests read it off a plain socket.
struct HTTPReply {
    var status: Int
    /// Header names lowercased.
    var headers: [String: String]
    var body: String
}

/// Sends `requests` (raw HTTP/1 text, pipelined on one TCP connection to 127.0.0.1:port)
/// and reads until the server closes; each reply is framed by its Content-Length, so the
/// last request should say `Connection: close` (or be HTTP/1.0). A plain socket, so the
/// test sees exactly the bytes nbdtap sends: no client library's keep-alive or retries.
func httpExchange(port: Int, _ requests: [String]) throws -> [HTTPReply] {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var timeout = timeval(tv_sec: 20, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    guard withLoopback(fd, port, connect) == 0 else { throw HarnessError.timeout("connect to port \(port)") }
    let out = Array(requests.joined().utf8)
    var sent = 0
    while sent < out.count {
        let n = out[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { break }  // the server may close early (the request-size test)
        sent += n
    }
    var input: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        input += chunk[0..<n]
    }
    return parseReplies(input)
}

func parseReplies(_ bytes: [UInt8]) -> [HTTPReply] {
    var replies: [HTTPReply] = []
    var rest = bytes[...]
    let separator = Array("\r\n\r\n".utf8)
    while let end = rest.firstRange(of: separator) {
        let head = String(decoding: rest[rest.startIndex..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let status = head.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        let length = headers["content-length"].flatMap { Int($0) } ?? (rest.count - (end.upperBound - rest.startIndex))
        let bodyEnd = min(end.upperBound + length, rest.endIndex)
        replies.append(HTTPReply(status: status, headers: headers, body: String(decoding: rest[end.upperBound..<bodyEnd], as: UTF8.self)))
        rest = rest[bodyEnd...]
    }
    return replies
}

/// GET `target` with `Connection: close`.
func httpGet(port: Int, _ target: String) throws -> HTTPReply? {
    try httpExchange(port: port, ["GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"]).first
}

/// The samples of a text-format scrape, by `name{labels}` as written.
func samples(_ text: String) -> [String: Double] {
    var out: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else { continue }
        out[String(line[..<space])] = v
    }
    return out
}
