/// `--disconnect-after requests=N`, `client-bytes=N` or `server-bytes=N`: nbdtap drops
/// both connections once N requests have been forwarded (right after the Nth, its reply
/// still owed), or once N bytes of the client's (or the server's) stream have been
/// relayed, counted from the stream's first byte, so a cut can fall inside a WRITE's or
/// a READ reply's payload. No nbdkit filter does this; it is the fault qemu's
/// `reconnect-delay` exists for. Every connection is cut the same way unless `times=K`
/// limits the cuts to the first K connections that reach the point.
public struct DisconnectLayer: Hashable, Sendable {
    public enum Point: Hashable, Sendable {
        case requests(UInt64)
        case clientBytes(UInt64)
        case serverBytes(UInt64)
    }

    public var point: Point
    public var times: UInt64?

    public init(point: Point, times: UInt64? = nil) {
        self.point = point
        self.times = times
    }

    public init(spec: String) throws(LayerOptionError) {
        let bad = LayerOptionError(option: "--disconnect-after", value: spec,
                                   expected: "requests=N, client-bytes=SIZE or server-bytes=SIZE (a bare N is requests), optionally times=K")
        var point: Point?
        var times: UInt64?
        for (key, value) in LayerValues.pairs(spec) {
            switch key {
            case "", "requests":
                guard let n = UInt64(value), n > 0 else { throw bad }
                point = .requests(n)
            case "client-bytes":
                guard let n = LayerValues.size(value), n > 0 else { throw bad }
                point = .clientBytes(n)
            case "server-bytes":
                guard let n = LayerValues.size(value), n > 0 else { throw bad }
                point = .serverBytes(n)
            case "times":
                guard let n = UInt64(value), n > 0 else { throw bad }
                times = n
            default:
                throw bad
            }
        }
        guard let point else { throw bad }
        self.init(point: point, times: times)
    }

    public var description: String {
        switch point {
        case .requests(let n): return "after \(n) requests (--disconnect-after)"
        case .clientBytes(let n): return "after \(n) bytes from the client (--disconnect-after)"
        case .serverBytes(let n): return "after \(n) bytes from the server (--disconnect-after)"
        }
    }
}
