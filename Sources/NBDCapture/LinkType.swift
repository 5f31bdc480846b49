/// A capture's link-layer header type, as libpcap's `pcap_datalink` reports it (a DLT_
/// value; libpcap already maps the file's LINKTYPE_ value, e.g. LINKTYPE_RAW 101 to
/// DLT_RAW 12). Both raw-IP numbers are accepted because frames may also come from
/// elsewhere than libpcap (tests, other readers).
public struct LinkType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// DLT_NULL: BSD loopback, a 4-byte address family in the capturing host's byte order.
    public static let null = LinkType(rawValue: 0)
    /// DLT_EN10MB: Ethernet II (tcpdump on Linux `lo` writes this).
    public static let ethernet = LinkType(rawValue: 1)
    /// DLT_RAW on most platforms: the frame is an IP packet, version in its first nibble.
    public static let raw = LinkType(rawValue: 12)
    /// LINKTYPE_RAW as stored in files: same as `raw`.
    public static let rawLinktype = LinkType(rawValue: 101)
    /// DLT_LOOP (OpenBSD loopback): like `null` but the family is in network byte order.
    public static let loop = LinkType(rawValue: 108)
    /// DLT_LINUX_SLL: Linux "cooked" capture (`tcpdump -i any`), 16-byte header.
    public static let linuxSLL = LinkType(rawValue: 113)
    /// DLT_IPV4: raw IPv4 only.
    public static let ipv4 = LinkType(rawValue: 228)
    /// DLT_IPV6: raw IPv6 only.
    public static let ipv6 = LinkType(rawValue: 229)
    /// DLT_LINUX_SLL2: Linux cooked capture v2 (`tcpdump -i any` since libpcap 1.10), 20 bytes.
    public static let linuxSLL2 = LinkType(rawValue: 276)

    /// Link types this package can parse; anything else is skipped frame by frame.
    public static let supported: [LinkType] = [.null, .ethernet, .raw, .rawLinktype, .loop, .linuxSLL, .ipv4, .ipv6, .linuxSLL2]

    public var isSupported: Bool { LinkType.supported.contains(self) }

    public var description: String {
        switch self {
        case .null: return "NULL"
        case .ethernet: return "EN10MB"
        case .raw, .rawLinktype: return "RAW"
        case .loop: return "LOOP"
        case .linuxSLL: return "LINUX_SLL"
        case .ipv4: return "IPV4"
        case .ipv6: return "IPV6"
        case .linuxSLL2: return "LINUX_SLL2"
        default: return "DLT \(rawValue)"
        }
    }
}
