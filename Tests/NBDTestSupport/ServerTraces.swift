import Foundation

/// A request as a server's own trace recorded it: the ground truth for captures made
/// against qemu-nbd and nbd-server, read from their files, never from the wire.
public struct TracedRequest: Hashable, CustomStringConvertible {
    public var type: Int
    public var flags: Int
    public var offset: UInt64
    public var length: UInt64
    public init(type: Int, flags: Int, offset: UInt64, length: UInt64) {
        self.type = type
        self.flags = flags
        self.offset = offset
        self.length = length
    }
    public var description: String { "type=\(type) flags=0x\(String(flags, radix: 16)) offset=\(offset) length=\(length)" }
}

/// qemu-nbd `--trace 'nbd_*'`: `nbd_receive_request Got request: { magic = 0x25609513,
/// .flags = 0x8, .type = 0x7, from = 0, len = 1048576 }` per request, and the errors it
/// sent (`error = 95 (ENOTSUP)` in simple or structured error replies).
public func qemuTrace(_ text: String) -> (requests: [TracedRequest], errors: [String: Int]) {
    let req = try! NSRegularExpression(pattern: #"nbd_receive_request Got request: \{ magic = 0x[0-9a-f]+, \.flags = 0x([0-9a-f]+), \.type = 0x([0-9a-f]+), from = (\d+), len = (\d+)"#)
    let err = try! NSRegularExpression(pattern: #"nbd_co_send_(?:simple_reply|structured_error|chunk_error)\b.*error = (\d+) \((\w+)\)"#)
    var requests: [TracedRequest] = []
    var errors: [String: Int] = [:]
    for line in text.split(separator: "\n") {
        let s = String(line)
        let range = NSRange(s.startIndex..., in: s)
        if let m = req.firstMatch(in: s, range: range) {
            func g(_ i: Int) -> String { String(s[Range(m.range(at: i), in: s)!]) }
            requests.append(TracedRequest(type: Int(g(2), radix: 16)!, flags: Int(g(1), radix: 16)!, offset: UInt64(g(3))!, length: UInt64(g(4))!))
        } else if let m = err.firstMatch(in: s, range: range) {
            let code = String(s[Range(m.range(at: 1), in: s)!])
            if code != "0" { errors[String(s[Range(m.range(at: 2), in: s)!]), default: 0] += 1 }
        }
    }
    return (requests, errors)
}

/// nbd-server's binary `transactionlog`: each 28-byte request header (magic 0x25609513,
/// u32 flags << 16 | type, u64 handle, u64 offset, u32 length, no data) and 16-byte
/// simple reply (magic 0x67446698, u32 error, u64 handle), big-endian.
public func nbdServerTransactionLog(_ data: Data) -> (requests: [TracedRequest], errors: [Int: Int]) {
    let b = [UInt8](data)
    func u32(_ i: Int) -> UInt32 { (0..<4).reduce(0) { $0 << 8 | UInt32(b[i + $1]) } }
    func u64(_ i: Int) -> UInt64 { (0..<8).reduce(0) { $0 << 8 | UInt64(b[i + $1]) } }
    var requests: [TracedRequest] = []
    var errors: [Int: Int] = [:]
    var i = 0
    while i + 4 <= b.count {
        switch u32(i) {
        case 0x2560_9513 where i + 28 <= b.count:
            let tf = u32(i + 4)
            requests.append(TracedRequest(type: Int(tf & 0xffff), flags: Int(tf >> 16), offset: u64(i + 16), length: UInt64(u32(i + 24))))
            i += 28
        case 0x6744_6698 where i + 16 <= b.count:
            let e = Int(u32(i + 4))
            if e != 0 { errors[e, default: 0] += 1 }
            i += 16
        default:
            return (requests, errors)
        }
    }
    return (requests, errors)
}

/// The nbdkit log action each NBD command is logged as, by wire value (0-8): how a
/// server's own record (trace, transaction log) is put beside nbdtap's log.
public let actionForCommand: [Int: String] = [0: "Read", 1: "Write", 3: "Flush", 4: "Trim", 5: "Cache", 6: "Zero", 7: "Extents"]

/// qemu-nbd or qemu-storage-daemon `--trace nbd_co_receive_request_decode_type`: one line
/// per request received, `Decoding type: handle = 1, type = 1 (write)` in qemu 7.2 and
/// `cookie = 1` in qemu 10. Counts per nbdkit log action; NBD_CMD_DISC is left out (nbdkit
/// logs it as Disconnect, not as a request).
public func qemuDecodeTypeCounts(_ text: String) -> [String: Int] {
    let re = try! NSRegularExpression(pattern: #"nbd_co_receive_request_decode_type .*type = (\d+) \("#)
    var counts: [String: Int] = [:]
    for line in text.split(separator: "\n") {
        let s = String(line)
        guard let m = re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)),
              let type = Int(s[Range(m.range(at: 1), in: s)!]) else { continue }
        if type == 2 { continue }
        counts[actionForCommand[type] ?? "type\(type)", default: 0] += 1
    }
    return counts
}

/// Requests per action in nbd-server's transaction log (NBD_CMD_DISC left out).
public func nbdServerActionCounts(_ data: Data) -> [String: Int] {
    var counts: [String: Int] = [:]
    for r in nbdServerTransactionLog(data).requests where r.type != 2 {
        counts[actionForCommand[r.type] ?? "type\(r.type)", default: 0] += 1
    }
    return counts
}
