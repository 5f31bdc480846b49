import Foundation
import NBDCapture
import NBDConversation
import NIOCore

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let capturesDir = repoRoot.appendingPathComponent("Captures")

/// A fresh temporary directory per call, for files the tests write.
func temporaryDirectory() throws -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("nbdcapture-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

// MARK: - Building frames by hand

let clientV4 = Endpoint(address: IPAddress(v4: 10, 0, 0, 1), port: 40000)
let serverV4 = Endpoint(address: IPAddress(v4: 10, 0, 0, 2), port: 10809)
let clientV6 = Endpoint(address: .v6(0x2001_0db8_0000_0000, 1), port: 40000)
let serverV6 = Endpoint(address: .v6(0x2001_0db8_0000_0000, 2), port: 10809)

func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
func be32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }

/// A TCP header (20 bytes, or more with `options` words) followed by the payload.
func tcpBytes(_ src: Endpoint, _ dst: Endpoint, seq: UInt32, ack: UInt32 = 0, flags: TCPFlags, payload: [UInt8],
              optionWords: Int = 0) -> [UInt8] {
    be16(src.port) + be16(dst.port) + be32(seq) + be32(ack)
        + [UInt8((5 + optionWords) << 4), flags.rawValue] + be16(65535) + [0, 0, 0, 0]
        + [UInt8](repeating: 1, count: optionWords * 4)  // NOP options
        + payload
}

/// An IPv4 packet carrying `l4` (protocol 6 unless told), checksum left zero (never checked).
func ipv4(_ src: IPAddress, _ dst: IPAddress, _ l4: [UInt8], proto: UInt8 = 6, fragment: UInt16 = 0,
          totalLength: Int? = nil) -> [UInt8] {
    let total = UInt16(truncatingIfNeeded: totalLength ?? (20 + l4.count))
    return [0x45, 0] + be16(total) + [0, 1] + be16(fragment) + [64, proto, 0, 0] + src.bytes + dst.bytes + l4
}

/// An IPv6 packet; `extensions` are (type, bytes) pairs chained before the upper layer.
func ipv6(_ src: IPAddress, _ dst: IPAddress, _ l4: [UInt8], next: UInt8 = 6,
          extensions: [(UInt8, [UInt8])] = [], payloadLength: Int? = nil) -> [UInt8] {
    var chain: [UInt8] = []
    var first = next
    for (i, ext) in extensions.enumerated().reversed() {
        // Each extension header names the header after it.
        let after = i == extensions.count - 1 ? next : extensions[i + 1].0
        var h = ext.1
        h[0] = after
        chain = h + chain
        first = ext.0
    }
    if extensions.isEmpty { first = next }
    let body = chain + l4
    return [0x60, 0, 0, 0] + be16(UInt16(truncatingIfNeeded: payloadLength ?? body.count)) + [first, 64]
        + src.bytes + dst.bytes + body
}

func ethernet(_ ip: [UInt8], etherType: UInt16 = 0x0800, vlans: [UInt16] = []) -> [UInt8] {
    var f: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]
    for tag in vlans { f += be16(0x8100) + be16(tag) }
    return f + be16(etherType) + ip
}

/// One Ethernet/IPv4 (or IPv6 for v6 endpoints) frame carrying a TCP segment.
func frame(_ src: Endpoint, _ dst: Endpoint, seq: UInt32, ack: UInt32 = 0, flags: TCPFlags = [.ack, .psh],
           _ payload: [UInt8] = []) -> [UInt8] {
    let t = tcpBytes(src, dst, seq: seq, ack: ack, flags: flags, payload: payload)
    if case .v6 = src.address { return ethernet(ipv6(src.address, dst.address, t), etherType: 0x86DD) }
    return ethernet(ipv4(src.address, dst.address, t))
}

/// Bytes 0, 1, 2, … (mod 251, so offsets are recognisable), `count` of them from `offset`.
func pattern(_ offset: Int, _ count: Int) -> [UInt8] {
    (offset..<(offset + count)).map { UInt8($0 % 251) }
}

// MARK: - Running the reassembler

/// Everything the reassembler said, grouped for assertions.
struct Run {
    var events: [CaptureEvent] = []
    var counters = CaptureCounters()
    var connections: [ConnectionInfo] = []

    func stream(_ id: Int, _ d: StreamDirection) -> [UInt8] {
        var out: [UInt8] = []
        for case let .data(c, dir, b, _, _) in events where c == id && dir == d { out += Array(b.readableBytesView) }
        return out
    }

    func gaps(_ id: Int, _ d: StreamDirection) -> [UInt64] {
        events.compactMap { if case let .gap(c, dir, n, _, _) = $0, c == id, dir == d { return n } else { return nil } }
    }

    func ends(_ id: Int) -> [(StreamDirection, EndReason)] {
        events.compactMap { if case let .end(c, d, r, _, _) = $0, c == id { return (d, r) } else { return nil } }
    }

    /// The stream with gaps as runs of 0xEE, to check both content and position of holes.
    func streamWithGaps(_ id: Int, _ d: StreamDirection) -> [UInt8] {
        var out: [UInt8] = []
        for e in events {
            switch e {
            case let .data(c, dir, b, _, _) where c == id && dir == d: out += Array(b.readableBytesView)
            case let .gap(c, dir, n, _, _) where c == id && dir == d: out += [UInt8](repeating: 0xEE, count: Int(n))
            default: break
            }
        }
        return out
    }
}

/// Feed frames (numbered from 1, 1 ms apart) of one link type, then finish.
func reassemble(_ frames: [[UInt8]], linkType: LinkType = .ethernet,
                configuration: TCPReassembler.Configuration = .init(), finish: Bool = true) -> Run {
    let r = TCPReassembler(configuration: configuration)
    var run = Run()
    for (i, f) in frames.enumerated() {
        let p = Packet(frameNumber: i + 1, timestamp: UInt64(i + 1) * 1_000_000, capturedLength: f.count,
                       originalLength: f.count, bytes: ByteBuffer(bytes: f))
        r.process(p, linkType: linkType, into: &run.events)
    }
    if finish { r.finish(frame: frames.count, time: UInt64(frames.count) * 1_000_000, into: &run.events) }
    run.counters = r.counters
    run.connections = r.allConnections
    return run
}

/// Read a capture file to the end through CaptureReader.
func readCapture(_ path: String, configuration: TCPReassembler.Configuration = .init()) throws -> (Run, PcapReadStatus) {
    let reader = try CaptureReader(file: path, configuration: configuration)
    var run = Run()
    reader.forEachEvent { run.events.append($0) }
    run.counters = reader.counters
    run.connections = reader.reassembler.allConnections
    return (run, reader.status)
}

// MARK: - Writing pcap files

/// A classic pcap file built in memory: little-endian, microsecond or nanosecond magic.
struct PcapFile {
    var bytes: [UInt8]

    init(linkType: UInt32 = 1, nanoseconds: Bool = false, snaplen: UInt32 = 262_144) {
        bytes = le32(nanoseconds ? 0xa1b2_3c4d : 0xa1b2_c3d4) + le16(2) + le16(4) + le32(0) + le32(0)
            + le32(snaplen) + le32(linkType)
    }

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// A record; `caplen`/`origlen` default to the data length (override to forge headers).
    mutating func add(_ data: [UInt8], seconds: UInt32 = 1_700_000_000, fraction: UInt32 = 0,
                      caplen: UInt32? = nil, origlen: UInt32? = nil) {
        bytes += le32(seconds) + le32(fraction) + le32(caplen ?? UInt32(data.count)) + le32(origlen ?? UInt32(data.count)) + data
    }

    func write(to url: URL) throws { try Data(bytes).write(to: url) }
}

func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8)] }
func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

/// Run a tool (tshark, editcap) and return its exit status.
@discardableResult
func runTool(_ path: String, _ args: [String]) throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    return p.terminationStatus
}

/// nil when equal, else a short description (large byte arrays make unreadable failures).
func difference(_ got: [UInt8], _ want: [UInt8]) -> String? {
    if got == want { return nil }
    let firstDiff = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, want.count)
    return "got \(got.count) bytes, want \(want.count); first difference at \(firstDiff)"
}
