/// An IPv4 or IPv6 address as it appears in a captured packet. Kept as plain integers
/// (no Foundation, no sockaddr) so the reassembler can hash 4-tuples cheaply.
public enum IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    case v4(UInt32)
    /// The 16 address bytes as two big-endian halves.
    case v6(UInt64, UInt64)

    public init(v4 a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        self = .v4(UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d))
    }

    /// The address in network byte order (4 or 16 bytes), e.g. to build packets in tests.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let a):
            return (0..<4).map { UInt8(truncatingIfNeeded: a >> (24 - 8 * $0)) }
        case .v6(let hi, let lo):
            return (0..<8).map { UInt8(truncatingIfNeeded: hi >> (56 - 8 * $0)) }
                + (0..<8).map { UInt8(truncatingIfNeeded: lo >> (56 - 8 * $0)) }
        }
    }

    /// Dotted quad for IPv4; RFC 5952 text (lower case, longest run of zero groups
    /// compressed to `::`, IPv4-mapped shown as `::ffff:a.b.c.d`) for IPv6.
    public var description: String {
        switch self {
        case .v4(let a):
            return (0..<4).map { String((a >> (24 - 8 * $0)) & 0xff) }.joined(separator: ".")
        case .v6(let hi, let lo):
            if hi == 0 && lo >> 32 == 0xffff {
                return "::ffff:" + IPAddress.v4(UInt32(truncatingIfNeeded: lo)).description
            }
            let groups = (0..<4).map { UInt16(truncatingIfNeeded: hi >> (48 - 16 * $0)) }
                + (0..<4).map { UInt16(truncatingIfNeeded: lo >> (48 - 16 * $0)) }
            // Longest run of at least two zero groups (first one on ties).
            var best = (start: -1, length: 0)
            var i = 0
            while i < 8 {
                if groups[i] == 0 {
                    var j = i
                    while j < 8 && groups[j] == 0 { j += 1 }
                    if j - i > best.length { best = (i, j - i) }
                    i = j
                } else {
                    i += 1
                }
            }
            let hex = groups.map { String($0, radix: 16) }
            if best.length < 2 { return hex.joined(separator: ":") }
            let head = hex[0..<best.start].joined(separator: ":")
            let tail = hex[(best.start + best.length)...].joined(separator: ":")
            return head + "::" + tail
        }
    }

    public static func < (l: IPAddress, r: IPAddress) -> Bool {
        switch (l, r) {
        case (.v4(let a), .v4(let b)): return a < b
        case (.v4, .v6): return true
        case (.v6, .v4): return false
        case (.v6(let a1, let a2), .v6(let b1, let b2)): return (a1, a2) < (b1, b2)
        }
    }
}

/// One side of a TCP connection: address and port.
public struct Endpoint: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// `127.0.0.1:10809` or `[::1]:10809`, the usual way to write a socket address.
    public var description: String {
        switch address {
        case .v4: return "\(address):\(port)"
        case .v6: return "[\(address)]:\(port)"
        }
    }

    public static func < (l: Endpoint, r: Endpoint) -> Bool {
        (l.address, l.port) < (r.address, r.port)
    }
}
