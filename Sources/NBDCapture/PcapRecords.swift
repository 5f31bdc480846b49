/// The classic pcap format (pcap-savefile(5)) read in place: the 24-byte file header, then
/// records of a 16-byte header and the captured bytes. Both byte orders, the microsecond
/// and nanosecond magics, and the two old variants libpcap still reads (the 24-byte record
/// headers of the "Kuznetzov" patch, and caplen/len swapped before version 2.3), with
/// libpcap's rules for lengths so that both readers give the same frames.
struct PcapRecords {
    enum LengthOrder {
        case normal, swapped, maybeSwapped
    }

    static let fileHeaderLength = 24
    private let order: FileByteOrder
    private let nanoseconds: Bool
    private let recordHeaderLength: Int
    private let lengthOrder: LengthOrder
    let linkType: LinkType
    /// Captured bytes kept per record (longer records are cut to it, as libpcap does).
    let snapshot: Int
    /// Offset of the next record.
    private var offset = PcapRecords.fileHeaderLength

    /// The magic's four bytes as stored, when they announce classic pcap: (big-endian,
    /// nanoseconds, Kuznetzov record headers).
    static func recognise(_ magic: UInt32) -> (bigEndian: Bool, nano: Bool, patched: Bool)? {
        switch magic {
        case 0xa1b2_c3d4: return (false, false, false)
        case 0xa1b2_3c4d: return (false, true, false)
        case 0xa1b2_cd34: return (false, false, true)
        case 0xd4c3_b2a1: return (true, false, false)
        case 0x4d3c_b2a1: return (true, true, false)
        case 0x34cd_b2a1: return (true, false, true)
        default: return nil
        }
    }

    /// Parses the file header; the message says what is wrong with it.
    init(file: MappedFile) throws(PcapError) {
        guard let magicBytes = file.bytes(at: 0, count: 4),
              let kind = Self.recognise(magicBytes.loadUnaligned(as: UInt32.self)) else {
            throw PcapError("unknown file format")
        }
        guard let h = file.bytes(at: 0, count: Self.fileHeaderLength) else {
            throw PcapError("truncated dump file; tried to read \(Self.fileHeaderLength) file header bytes, only got \(file.available(from: 0))")
        }
        let order = FileByteOrder(bigEndian: kind.bigEndian)
        let major = order.u16(h, 4), minor = order.u16(h, 6)
        guard major >= 2 else { throw PcapError("archaic pcap savefile format (version \(major).\(minor))") }
        guard (major == 2 && minor <= 4) || (major == 543 && minor == 0) else {
            throw PcapError("unsupported pcap savefile version \(major).\(minor)")
        }
        let linkType = dltOf(linktype: order.u32(h, 20) & 0x03FF_FFFF)
        var snapshot = adjustedSnapshot(order.u32(h, 16), linkType)
        if kind.patched && linkType == .ethernet {
            // libpcap allows for the fake Ethernet header of a cooked-mode capture.
            snapshot = snapshot <= Int(Int32.max) - 14 ? snapshot + 14 : Int(Int32.max)
        }
        self.order = order
        self.nanoseconds = kind.nano
        self.recordHeaderLength = kind.patched ? 24 : 16
        self.lengthOrder = major == 543 || minor < 3 ? .swapped : (minor == 3 ? .maybeSwapped : .normal)
        self.linkType = linkType
        self.snapshot = snapshot
    }

    mutating func next(in file: MappedFile) -> RecordOutcome {
        let at = offset
        guard let h = file.bytes(at: at, count: recordHeaderLength) else {
            let left = file.available(from: at)
            if left == 0 { return .end }
            return .damaged(file.mapError ?? "truncated dump file: the record header at byte \(at) has \(left) of \(recordHeaderLength) bytes")
        }
        var caplen = order.u32(h, 8)
        var len = order.u32(h, 12)
        switch lengthOrder {
        case .normal: break
        case .maybeSwapped where caplen <= len: break
        case .maybeSwapped, .swapped: swap(&caplen, &len)
        }
        let seconds = Int64(Int32(bitPattern: order.u32(h, 0)))
        let fraction = Int64(Int32(bitPattern: order.u32(h, 4)))
        let timestamp = epochNanoseconds(seconds: seconds, fraction: nanoseconds ? fraction : fraction * 1000)
        let maximum = maximumSnapshot(linkType)
        if caplen > UInt32(maximum) {
            let limit = Int(caplen) > snapshot ? "snaplen of \(snapshot)" : "maximum of \(maximum)"
            return .damaged("invalid packet capture length \(caplen), bigger than \(limit) (record at byte \(at))")
        }
        // Longer than the file's snapshot length but sane: the first `snapshot` bytes are
        // the frame, the rest is read past (libpcap's rule for old Solaris files).
        let stored = Int(caplen)
        let kept = min(stored, snapshot)
        let data = at + recordHeaderLength
        guard file.bytes(at: data, count: stored) != nil else {
            return .damaged(file.mapError ?? "truncated dump file: the record at byte \(at) has \(file.available(from: data)) of its \(stored) captured bytes")
        }
        offset = data + stored
        return .frame(timestamp: timestamp, originalLength: Int(len), linkType: linkType, offset: data, capturedLength: kept)
    }
}
