import Foundation

/// A pcapng file built in memory, block by block, in either byte order (each section
/// says its own), for files no tool here writes: several interfaces and sections, binary
/// time resolutions, offsets, simple and obsolete packet blocks, damaged lengths.
struct PcapngFile {
    var bytes: [UInt8] = []
    /// Byte order of the section being written.
    var bigEndian = false

    func u16(_ v: UInt16) -> [UInt8] { bigEndian ? be16(v) : le16(v) }
    func u32(_ v: UInt32) -> [UInt8] { bigEndian ? be32(v) : le32(v) }
    func u64(_ v: UInt64) -> [UInt8] {
        bigEndian ? u32(UInt32(v >> 32)) + u32(UInt32(truncatingIfNeeded: v)) : u32(UInt32(truncatingIfNeeded: v)) + u32(UInt32(v >> 32))
    }

    /// A block: type, total length, body padded to 4 bytes, total length again.
    mutating func block(_ type: UInt32, _ body: [UInt8]) {
        let padded = body + [UInt8](repeating: 0, count: (4 - body.count % 4) % 4)
        let total = UInt32(12 + padded.count)
        bytes += u32(type) + u32(total) + padded + u32(total)
    }

    /// A section header starting a new section in the given byte order.
    mutating func section(bigEndian: Bool = false) {
        self.bigEndian = bigEndian
        block(0x0A0D_0D0A, u32(0x1A2B_3C4D) + u16(1) + u16(0) + u64(UInt64.max))
    }

    /// An interface; `tsresol` is the if_tsresol byte, `tsoffset` if_tsoffset seconds.
    mutating func interface(linkType: UInt16 = 1, snaplen: UInt32 = 262_144, tsresol: UInt8? = nil, tsoffset: UInt64? = nil) {
        var body = u16(linkType) + u16(0) + u32(snaplen)
        if let tsresol { body += u16(9) + u16(1) + [tsresol, 0, 0, 0] }
        if let tsoffset { body += u16(14) + u16(8) + u64(tsoffset) }
        if tsresol != nil || tsoffset != nil { body += u16(0) + u16(0) }
        block(1, body)
    }

    /// An enhanced packet block with a time stamp in the interface's units.
    mutating func enhanced(_ data: [UInt8], interface: UInt32 = 0, units: UInt64, originalLength: Int? = nil) {
        block(6, u32(interface) + u32(UInt32(units >> 32)) + u32(UInt32(truncatingIfNeeded: units))
                + u32(UInt32(data.count)) + u32(UInt32(originalLength ?? data.count)) + data)
    }

    mutating func simple(_ data: [UInt8], originalLength: Int? = nil) {
        block(3, u32(UInt32(originalLength ?? data.count)) + data)
    }

    /// The obsolete packet block (type 2) that libpcap still reads.
    mutating func obsolete(_ data: [UInt8], interface: UInt16 = 0, units: UInt64) {
        block(2, u16(interface) + u16(0) + u32(UInt32(units >> 32)) + u32(UInt32(truncatingIfNeeded: units))
                + u32(UInt32(data.count)) + u32(UInt32(data.count)) + data)
    }

    func write(to url: URL) throws { try Data(bytes).write(to: url) }
}
