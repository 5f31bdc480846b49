/// The pcapng format (draft-ietf-opsawg-pcapng) read in place: blocks of a type, a total
/// length and the same length again at the end. Section headers (either byte order, as
/// many sections as the file has), interface descriptions (link type, snapshot length,
/// `if_tsresol`, `if_tsoffset`; several interfaces, each with its own link type), and the
/// three packet blocks (enhanced, simple, and the obsolete packet block, as libpcap reads
/// them); every other block is passed over by its length.
///
/// Lengths are checked as libpcap checks them, so a file both read gives both the same
/// frames: a block is at least 12 bytes, a multiple of 4, at most 16 MiB, inside the file,
/// with matching lengths at both ends; a packet's captured length fits its block and its
/// interface's snapshot length. Where libpcap gives up and this reader need not, it goes
/// on: interfaces of different link types, and sections of different byte orders.
struct PcapngBlocks {
    struct Interface {
        var linkType: LinkType
        var snapshot: Int
        /// Time stamp units per second (10^n or 2^n).
        var unitsPerSecond: UInt64
        var binary: Bool
        var offsetSeconds: UInt64
    }

    static let sectionHeaderType: UInt32 = 0x0A0D_0D0A
    static let byteOrderMagic: UInt32 = 0x1A2B_3C4D
    /// libpcap's limit for one block (`INITIAL_MAX_BLOCKSIZE`; its larger snapshot limits
    /// for a few link types raise it no further than this).
    static let maximumBlockLength = 16 << 20
    /// A bound on the interfaces of one section, so a hostile file cannot grow the table
    /// without limit (a real capture has a handful).
    static let maximumInterfaces = 65_536

    private var order = FileByteOrder(bigEndian: false)
    private var interfaces: [Interface] = []
    private var offset = 0
    /// The first interface's link type: what the capture reports as its link type.
    private(set) var linkType = LinkType.ethernet
    private(set) var snapshot = 0

    /// Reads the first section header and the blocks up to the first interface
    /// description, as libpcap does when it opens a file (a file without one is refused).
    init(file: MappedFile) throws(PcapError) {
        guard let head = file.bytes(at: 0, count: 12), head.loadUnaligned(as: UInt32.self) == Self.sectionHeaderType else {
            throw PcapError("unknown file format")
        }
        let magic = head.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        guard magic == Self.byteOrderMagic || magic == Self.byteOrderMagic.byteSwapped else {
            throw PcapError("unknown file format")
        }
        order = FileByteOrder(bigEndian: magic != Self.byteOrderMagic)
        let length = order.u32(head, 4)
        guard length >= 28, length <= 1 << 20 else {
            throw PcapError("the Section Header Block of this pcapng file has an invalid length \(length) (28 to 1048576)")
        }
        while true {
            switch next(in: file, stopAtInterface: true) {
            case .frame:
                throw PcapError("the capture file has a packet block before any Interface Description Blocks")
            case .end:
                if interfaces.isEmpty { throw PcapError("the capture file has no Interface Description Blocks") }
                return
            case .damaged(let message):
                throw PcapError(message)
            }
        }
    }

    mutating func next(in file: MappedFile) -> RecordOutcome {
        next(in: file, stopAtInterface: false)
    }

    /// The next packet; with `stopAtInterface`, `.end` once the first interface is known.
    private mutating func next(in file: MappedFile, stopAtInterface: Bool) -> RecordOutcome {
        while true {
            let at = offset
            guard let head = file.bytes(at: at, count: 12) else {
                let left = file.available(from: at)
                if left == 0 { return .end }
                return .damaged(file.mapError ?? "truncated pcapng file: the block at byte \(at) has \(left) bytes, a block has at least 12")
            }
            let type = order.u32(head, 0)
            if type == Self.sectionHeaderType {
                // A new section says its own byte order.
                let magic = head.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
                guard magic == Self.byteOrderMagic || magic == Self.byteOrderMagic.byteSwapped else {
                    return .damaged("the section header at byte \(at) has a bad byte-order magic 0x\(String(magic, radix: 16))")
                }
                order = FileByteOrder(bigEndian: magic != Self.byteOrderMagic)
            }
            let length = Int(order.u32(head, 4))
            guard length >= 12 else { return .damaged("the pcapng block at byte \(at) has a length of \(length) < 12") }
            guard length % 4 == 0 else {
                return .damaged("the pcapng block at byte \(at) has a length of \(length) that is not a multiple of 4")
            }
            guard length <= Self.maximumBlockLength else {
                return .damaged("the pcapng block at byte \(at) has a length of \(length) > maximum \(Self.maximumBlockLength)")
            }
            guard let block = file.bytes(at: at, count: length) else {
                return .damaged(file.mapError ?? "truncated pcapng file: the block at byte \(at) has \(file.available(from: at)) of its \(length) bytes")
            }
            let trailer = Int(order.u32(block, length - 4))
            guard trailer == length else {
                return .damaged("the pcapng block at byte \(at) has lengths \(length) in its header and \(trailer) in its trailer")
            }
            offset = at + length
            let body = UnsafeRawBufferPointer(rebasing: block[8..<(length - 4)])
            switch type {
            case Self.sectionHeaderType:
                guard body.count >= 16 else { return .damaged("the section header at byte \(at) is too short") }
                let major = order.u16(body, 4)
                guard major == 1 else { return .damaged("the section header at byte \(at) has pcapng major version \(major), not 1") }
                interfaces.removeAll(keepingCapacity: true)
            case 1:
                if let message = addInterface(body, at: at) { return .damaged(message) }
                if stopAtInterface { return .end }
            case 6, 3, 2:
                return packet(type, body, blockAt: at)
            default:
                break  // name resolution, statistics, journal, custom...: not frames
            }
        }
    }

    /// An enhanced (6), simple (3) or obsolete (2) packet block's frame.
    private func packet(_ type: UInt32, _ body: UnsafeRawBufferPointer, blockAt at: Int) -> RecordOutcome {
        let fixed = type == 3 ? 4 : 20
        guard body.count >= fixed else { return .damaged("the packet block at byte \(at) is too short") }
        let interface: Int, caplen: Int, len: Int, units: UInt64
        switch type {
        case 3:
            interface = 0
            len = Int(order.u32(body, 0))
            caplen = interfaces.isEmpty ? len : min(len, interfaces[0].snapshot)
            units = 0
        case 2:
            interface = Int(order.u16(body, 0))
            units = UInt64(order.u32(body, 4)) << 32 | UInt64(order.u32(body, 8))
            caplen = Int(order.u32(body, 12))
            len = Int(order.u32(body, 16))
        default:
            interface = Int(order.u32(body, 0))
            units = UInt64(order.u32(body, 4)) << 32 | UInt64(order.u32(body, 8))
            caplen = Int(order.u32(body, 12))
            len = Int(order.u32(body, 16))
        }
        guard interface < interfaces.count else {
            return .damaged("the packet block at byte \(at) is on interface \(interface), which has no Interface Description Block")
        }
        let i = interfaces[interface]
        guard caplen <= i.snapshot else {
            return .damaged("invalid packet capture length \(caplen), bigger than snaplen of \(i.snapshot) (block at byte \(at))")
        }
        guard caplen <= body.count - fixed else {
            return .damaged("the packet block at byte \(at) is too short for its \(caplen) captured bytes")
        }
        return .frame(timestamp: timestamp(units, i), originalLength: len, linkType: i.linkType,
                      offset: at + 8 + fixed, capturedLength: caplen)
    }

    /// libpcap's conversion to nanoseconds, wrap-around and truncation to `int` included
    /// (they only matter for resolutions finer than 2^-34 s, which no capture has).
    private func timestamp(_ units: UInt64, _ i: Interface) -> UInt64 {
        let perSecond = i.unitsPerSecond
        let seconds = units / perSecond &+ i.offsetSeconds
        var fraction = units % perSecond
        if perSecond != 1_000_000_000 {
            if i.binary {
                fraction = (fraction &* 1_000_000_000) / perSecond
            } else if perSecond < 1_000_000_000 {
                fraction &*= 1_000_000_000 / perSecond
            } else {
                fraction /= perSecond / 1_000_000_000
            }
        }
        return epochNanoseconds(seconds: Int64(bitPattern: seconds), fraction: Int64(Int32(truncatingIfNeeded: fraction)))
    }

    /// Adds an interface from its description block; a message when the block is wrong.
    private mutating func addInterface(_ body: UnsafeRawBufferPointer, at: Int) -> String? {
        guard body.count >= 8 else { return "the Interface Description Block at byte \(at) is too short" }
        guard interfaces.count < Self.maximumInterfaces else {
            return "the section has more than \(Self.maximumInterfaces) interfaces (block at byte \(at))"
        }
        let linkType = dltOf(linktype: UInt32(order.u16(body, 0)))
        var i = Interface(linkType: linkType, snapshot: adjustedSnapshot(order.u32(body, 4), linkType),
                          unitsPerSecond: 1_000_000, binary: false, offsetSeconds: 0)
        var sawResolution = false, sawOffset = false
        var o = 8
        options: while o < body.count {
            guard body.count - o >= 4 else { return "the Interface Description Block at byte \(at) has an option cut short" }
            let code = order.u16(body, o), length = Int(order.u16(body, o + 2))
            let padded = (length + 3) / 4 * 4
            guard body.count - o - 4 >= padded else {
                return "the Interface Description Block at byte \(at) has an option \(code) of \(length) bytes past its end"
            }
            let value = o + 4
            o = value + padded
            switch code {
            case 0:
                guard length == 0 else { return "the Interface Description Block at byte \(at) has opt_endofopt with length \(length) != 0" }
                break options
            case 9:  // if_tsresol
                guard length == 1, !sawResolution else {
                    return "the Interface Description Block at byte \(at) has a bad or repeated if_tsresol option"
                }
                sawResolution = true
                let r = body[value]
                if r & 0x80 != 0 {
                    guard r & 0x7F <= 63 else { return "the Interface Description Block at byte \(at) has if_tsresol 2^-\(r & 0x7F), too fine" }
                    i.unitsPerSecond = 1 << UInt64(r & 0x7F)
                    i.binary = true
                } else {
                    guard r <= 19 else { return "the Interface Description Block at byte \(at) has if_tsresol 10^-\(r), too fine" }
                    i.unitsPerSecond = (0..<Int(r)).reduce(1) { v, _ in v * 10 }
                    i.binary = false
                }
            case 14:  // if_tsoffset
                guard length == 8, !sawOffset else {
                    return "the Interface Description Block at byte \(at) has a bad or repeated if_tsoffset option"
                }
                sawOffset = true
                i.offsetSeconds = order.u64(body, value)
            default:
                break
            }
        }
        if interfaces.isEmpty && snapshot == 0 {
            self.linkType = i.linkType
            self.snapshot = i.snapshot
        }
        interfaces.append(i)
        return nil
    }
}
