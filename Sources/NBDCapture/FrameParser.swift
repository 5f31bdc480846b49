import NIOCore

/// TCP header flags (the low 8 bits of the flags field).
public struct TCPFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    public static let ece = TCPFlags(rawValue: 0x40)
    public static let cwr = TCPFlags(rawValue: 0x80)
}

/// One TCP segment taken out of a frame: what the reassembler needs and nothing else.
public struct TCPSegment: Sendable {
    public var source: Endpoint
    public var destination: Endpoint
    public var sequenceNumber: UInt32
    public var acknowledgmentNumber: UInt32
    public var flags: TCPFlags
    /// The captured payload bytes (a slice of the frame, not a copy).
    public var payload: ByteBuffer
    /// Payload bytes the IP header says the segment carried but the capture does not
    /// have (snaplen truncation). They follow `payload` in sequence space; the
    /// reassembler reports them as a gap instead of waiting for them.
    public var missingPayloadBytes: Int

    public init(source: Endpoint, destination: Endpoint, sequenceNumber: UInt32, acknowledgmentNumber: UInt32,
                flags: TCPFlags, payload: ByteBuffer, missingPayloadBytes: Int = 0) {
        self.source = source
        self.destination = destination
        self.sequenceNumber = sequenceNumber
        self.acknowledgmentNumber = acknowledgmentNumber
        self.flags = flags
        self.payload = payload
        self.missingPayloadBytes = missingPayloadBytes
    }
}

/// Why a frame gave no TCP segment. Counted per reason so a summary can say what the
/// capture held besides the connections (ARP, UDP, fragments, damaged frames).
public enum SkipReason: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case emptyFrame = "empty frame"
    case unsupportedLinkType = "unsupported link type"
    case linkHeaderTruncated = "link header truncated"
    case notIP = "not IPv4/IPv6"
    case ipHeaderTruncated = "IP header truncated"
    case ipHeaderInvalid = "IP header invalid"
    case ipFragment = "IP non-first fragment"
    case notTCP = "not TCP"
    case tcpHeaderTruncated = "TCP header truncated"
    case tcpHeaderInvalid = "TCP header invalid"

    public var description: String { rawValue }
}

/// The outcome of parsing one frame: a TCP segment or the reason it was skipped.
public enum FrameParseResult: Sendable {
    case tcp(TCPSegment)
    case skipped(SkipReason)
}

/// Link layer, IPv4/IPv6 and TCP header parsing. Pure and bounds-checked: every byte
/// sequence gives a segment or a `SkipReason`, never a trap, because capture files
/// come from anywhere (damaged, truncated by snaplen, hand-made).
public enum FrameParser {
    static let etherTypeIPv4: UInt16 = 0x0800
    static let etherTypeIPv6: UInt16 = 0x86DD

    /// Parse one captured frame of the given link type.
    public static func parse(_ frame: ByteBuffer, linkType: LinkType) -> FrameParseResult {
        let fields = frame.withUnsafeReadableBytes { parseFields($0, linkType: linkType) }
        switch fields {
        case .skipped(let reason):
            return .skipped(reason)
        case .tcp(let f):
            let payload = frame.getSlice(at: frame.readerIndex + f.payload.lowerBound, length: f.payload.count) ?? ByteBuffer()
            return .tcp(TCPSegment(source: f.source, destination: f.destination, sequenceNumber: f.sequenceNumber,
                                   acknowledgmentNumber: f.acknowledgmentNumber, flags: f.flags, payload: payload,
                                   missingPayloadBytes: f.missingPayloadBytes))
        }
    }

    /// The same parse on bytes where they lie (a mapped capture file): the segment's
    /// header fields, and where its payload is, so the caller copies only what it needs.
    static func parseFields(_ frame: UnsafeRawBufferPointer, linkType: LinkType) -> FieldsResult {
        if frame.count == 0 { return .skipped(.emptyFrame) }
        let v = View(frame)
        let etherType: UInt16
        let ipStart: Int
        switch linkType {
        case .ethernet:
            guard var type = v.u16(12) else { return .skipped(.linkHeaderTruncated) }
            var off = 14
            // 802.1Q / 802.1ad / old QinQ tags: at most two (one outer, one inner).
            var tags = 0
            while type == 0x8100 || type == 0x88A8 || type == 0x9100 {
                tags += 1
                guard tags <= 2, let t = v.u16(off + 2) else {
                    return .skipped(tags > 2 ? .notIP : .linkHeaderTruncated)
                }
                type = t
                off += 4
            }
            etherType = type
            ipStart = off
        case .null, .loop:
            guard let b0 = v.u8(0), let b1 = v.u8(1), let b2 = v.u8(2), let b3 = v.u8(3) else {
                return .skipped(.linkHeaderTruncated)
            }
            // Host byte order of the capturing machine for NULL, network order for LOOP;
            // families are small numbers, so whichever end holds the nonzero byte wins.
            let family: UInt32 = (b0 == 0 && b1 == 0)
                ? UInt32(b2) << 8 | UInt32(b3)
                : UInt32(b1) << 8 | UInt32(b0)
            switch family {
            case 2: etherType = etherTypeIPv4
            case 10, 24, 28, 30: etherType = etherTypeIPv6  // Linux, Net/OpenBSD, FreeBSD, Darwin
            default: return .skipped(.notIP)
            }
            ipStart = 4
        case .linuxSLL:
            guard let t = v.u16(14) else { return .skipped(.linkHeaderTruncated) }
            etherType = t
            ipStart = 16
        case .linuxSLL2:
            guard let t = v.u16(0), v.count >= 20 else { return .skipped(.linkHeaderTruncated) }
            etherType = t
            ipStart = 20
        case .raw, .rawLinktype:
            switch (v.u8(0) ?? 0) >> 4 {
            case 4: etherType = etherTypeIPv4
            case 6: etherType = etherTypeIPv6
            default: return .skipped(.notIP)
            }
            ipStart = 0
        case .ipv4:
            etherType = etherTypeIPv4
            ipStart = 0
        case .ipv6:
            etherType = etherTypeIPv6
            ipStart = 0
        default:
            return .skipped(.unsupportedLinkType)
        }
        guard ipStart <= v.count else { return .skipped(.linkHeaderTruncated) }
        switch etherType {
        case etherTypeIPv4: return parseIPv4(v, at: ipStart)
        case etherTypeIPv6: return parseIPv6(v, at: ipStart)
        default: return .skipped(.notIP)
        }
    }

    /// IPv4: header length from IHL, payload bounded by the total length (so Ethernet
    /// padding of short frames is not taken for TCP payload); a total length of 0 is what
    /// captures of TSO super-packets show, then the captured bytes are the packet.
    static func parseIPv4(_ v: View, at ip: Int) -> FieldsResult {
        guard let vihl = v.u8(ip), let total = v.u16(ip + 2), let frag = v.u16(ip + 6), let proto = v.u8(ip + 9),
              let src = v.u32(ip + 12), let dst = v.u32(ip + 16) else {
            return .skipped(.ipHeaderTruncated)
        }
        guard vihl >> 4 == 4 else { return .skipped(.ipHeaderInvalid) }
        let ihl = Int(vihl & 0x0f) * 4
        guard ihl >= 20 else { return .skipped(.ipHeaderInvalid) }
        guard ip + ihl <= v.count else { return .skipped(.ipHeaderTruncated) }
        if frag & 0x1fff != 0 { return .skipped(.ipFragment) }
        guard proto == 6 else { return .skipped(.notTCP) }
        let available = v.count - ip
        var end = v.count
        var missing = 0
        if total != 0 {
            guard Int(total) >= ihl else { return .skipped(.ipHeaderInvalid) }
            if Int(total) <= available {
                end = ip + Int(total)
            } else {
                missing = Int(total) - available
            }
        }
        return parseTCP(v, at: ip + ihl, end: end, missing: missing,
                        source: .v4(src), destination: .v4(dst))
    }

    /// IPv6: fixed 40-byte header, then hop-by-hop (0), routing (43), destination
    /// options (60) and fragment (44; only a first fragment, offset 0, is followed) and
    /// AH (51) headers are skipped to reach TCP.
    static func parseIPv6(_ v: View, at ip: Int) -> FieldsResult {
        guard let ver = v.u8(ip), let plen = v.u16(ip + 4), var next = v.u8(ip + 6),
              let s1 = v.u64(ip + 8), let s2 = v.u64(ip + 16), let d1 = v.u64(ip + 24), let d2 = v.u64(ip + 32) else {
            return .skipped(.ipHeaderTruncated)
        }
        guard ver >> 4 == 6 else { return .skipped(.ipHeaderInvalid) }
        let available = v.count - ip - 40
        var end = v.count
        var missing = 0
        if plen != 0 {  // 0: jumbogram or TSO capture; take what was captured
            if Int(plen) <= available {
                end = ip + 40 + Int(plen)
            } else {
                missing = Int(plen) - available
            }
        }
        var off = ip + 40
        var headers = 0
        while next == 0 || next == 43 || next == 60 || next == 44 || next == 51 {
            headers += 1
            guard headers <= 16 else { return .skipped(.ipHeaderInvalid) }
            guard let nh = v.u8(off), let len = v.u8(off + 1), off + 8 <= end else {
                return .skipped(.ipHeaderTruncated)
            }
            let hlen: Int
            switch next {
            case 44:
                guard let fo = v.u16(off + 2) else { return .skipped(.ipHeaderTruncated) }
                if fo & 0xfff8 != 0 { return .skipped(.ipFragment) }
                hlen = 8
            case 51:
                hlen = (Int(len) + 2) * 4
            default:
                hlen = (Int(len) + 1) * 8
            }
            next = nh
            off += hlen
            guard off <= end else { return .skipped(.ipHeaderTruncated) }
        }
        guard next == 6 else { return .skipped(.notTCP) }
        return parseTCP(v, at: off, end: end, missing: missing,
                        source: .v6(s1, s2), destination: .v6(d1, d2))
    }

    /// TCP: data offset in 32-bit words (at least 5), payload up to `end`.
    static func parseTCP(_ v: View, at tcp: Int, end: Int, missing: Int,
                         source: IPAddress, destination: IPAddress) -> FieldsResult {
        guard tcp + 20 <= end, let sport = v.u16(tcp), let dport = v.u16(tcp + 2), let seq = v.u32(tcp + 4),
              let ack = v.u32(tcp + 8), let offByte = v.u8(tcp + 12), let flags = v.u8(tcp + 13) else {
            return .skipped(.tcpHeaderTruncated)
        }
        let doff = Int(offByte >> 4) * 4
        guard doff >= 20 else { return .skipped(.tcpHeaderInvalid) }
        guard tcp + doff <= end else {
            return .skipped(missing > 0 ? .tcpHeaderTruncated : .tcpHeaderInvalid)
        }
        return .tcp(SegmentFields(source: Endpoint(address: source, port: sport),
                                  destination: Endpoint(address: destination, port: dport),
                                  sequenceNumber: seq, acknowledgmentNumber: ack, flags: TCPFlags(rawValue: flags),
                                  payload: (tcp + doff)..<max(tcp + doff, end), missingPayloadBytes: missing))
    }

    /// Bounds-checked big-endian reads at offsets from the frame's first byte.
    struct View {
        let bytes: UnsafeRawBufferPointer
        var count: Int { bytes.count }
        init(_ b: UnsafeRawBufferPointer) { bytes = b }
        func u8(_ o: Int) -> UInt8? { o >= 0 && o + 1 <= count ? bytes[o] : nil }
        func u16(_ o: Int) -> UInt16? { o >= 0 && o + 2 <= count ? UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt16.self)) : nil }
        func u32(_ o: Int) -> UInt32? { o >= 0 && o + 4 <= count ? UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt32.self)) : nil }
        func u64(_ o: Int) -> UInt64? { o >= 0 && o + 8 <= count ? UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt64.self)) : nil }
    }
}

/// A TCP segment's header fields and where its payload lies in the frame: what
/// `FrameParser` finds before anything is copied.
struct SegmentFields {
    var source: Endpoint
    var destination: Endpoint
    var sequenceNumber: UInt32
    var acknowledgmentNumber: UInt32
    var flags: TCPFlags
    /// Byte offsets of the payload in the frame.
    var payload: Range<Int>
    var missingPayloadBytes: Int
}

/// `FrameParseResult` before the payload is taken out of the frame.
enum FieldsResult {
    case tcp(SegmentFields)
    case skipped(SkipReason)
}
