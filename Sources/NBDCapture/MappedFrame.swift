/// One captured frame where it lies in a mapped capture file (see `MappedCapture`): the
/// same numbers as a `Packet` from libpcap, but the bytes are not copied.
public struct MappedFrame {
    /// 1 for the first frame, counting every packet record (as libpcap and Wireshark do).
    public var frameNumber: Int
    /// Capture time, nanoseconds since the epoch, computed as libpcap computes it when
    /// asked for nanoseconds (so the two readers agree to the nanosecond).
    public var timestamp: UInt64
    /// Length of the frame on the wire.
    public var originalLength: Int
    /// Link type of the interface the frame was captured on (pcapng may have several).
    public var linkType: LinkType
    /// The captured bytes, inside the file's mapping: valid only until the next call of
    /// `MappedCapture.next()`, so whatever must outlive it is copied.
    public var bytes: UnsafeRawBufferPointer

    public var capturedLength: Int { bytes.count }
    public var isTruncated: Bool { bytes.count < originalLength }
}

/// What a format reader (`PcapRecords`, `PcapngBlocks`) found at its position.
enum RecordOutcome {
    /// A frame: its fields, and where its bytes are in the file.
    case frame(timestamp: UInt64, originalLength: Int, linkType: LinkType, offset: Int, capturedLength: Int)
    /// The file ended cleanly, between records.
    case end
    /// The file is damaged here; the message names the byte offset and the fault.
    case damaged(String)
}

/// Reads integers of a capture file in the byte order its header announced.
struct FileByteOrder {
    /// True when the file was written big-endian.
    var bigEndian: Bool

    func u16(_ p: UnsafeRawBufferPointer, _ o: Int) -> UInt16 {
        let v = p.loadUnaligned(fromByteOffset: o, as: UInt16.self)
        return bigEndian ? UInt16(bigEndian: v) : UInt16(littleEndian: v)
    }

    func u32(_ p: UnsafeRawBufferPointer, _ o: Int) -> UInt32 {
        let v = p.loadUnaligned(fromByteOffset: o, as: UInt32.self)
        return bigEndian ? UInt32(bigEndian: v) : UInt32(littleEndian: v)
    }

    func u64(_ p: UnsafeRawBufferPointer, _ o: Int) -> UInt64 {
        let v = p.loadUnaligned(fromByteOffset: o, as: UInt64.self)
        return bigEndian ? UInt64(bigEndian: v) : UInt64(littleEndian: v)
    }
}

/// The file's link-type number as libpcap reports it (`linktype_to_dlt`): LINKTYPE_ values
/// equal DLT_ values except for a few old ones, of which only LINKTYPE_RAW (101 -> DLT_RAW
/// 12) is one nbdtap reads; the others are mapped too so `LinkType`'s name is libpcap's.
func dltOf(linktype: UInt32) -> LinkType {
    switch linktype {
    case 100: return LinkType(rawValue: 11)   // ATM_RFC1483
    case 101: return .raw
    case 102: return LinkType(rawValue: 15)   // SLIP_BSDOS
    case 103: return LinkType(rawValue: 16)   // PPP_BSDOS
    case 106: return LinkType(rawValue: 19)   // ATM_CLIP
    default: return LinkType(rawValue: Int32(truncatingIfNeeded: linktype))
    }
}

/// The largest captured length libpcap accepts for a link type (`max_snaplen_for_dlt`):
/// a record longer than this is damage, not a frame.
func maximumSnapshot(_ linkType: LinkType) -> Int {
    switch linkType.rawValue {
    case 231: return 128 << 20  // DBUS
    case 279: return 8 << 20    // EBHSCR
    case 249: return 1 << 20    // USBPCAP
    default: return 262_144
    }
}

/// A file's snapshot length as libpcap uses it (`pcap_adjust_snapshot`): 0 or above
/// INT_MAX means "no limit given", then the link type's maximum.
func adjustedSnapshot(_ snaplen: UInt32, _ linkType: LinkType) -> Int {
    snaplen == 0 || snaplen > UInt32(Int32.max) ? maximumSnapshot(linkType) : Int(snaplen)
}

/// Epoch nanoseconds from the seconds and fraction libpcap puts in a `struct timeval`
/// (`time_t` seconds, fraction as an `int`), negative values clamped to 0 as `PcapSource`
/// clamps them.
func epochNanoseconds(seconds: Int64, fraction: Int64) -> UInt64 {
    UInt64(clamping: seconds) &* 1_000_000_000 &+ UInt64(clamping: fraction)
}
