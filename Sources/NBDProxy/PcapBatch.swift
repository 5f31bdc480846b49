import NIOCore

/// One event loop's pcap output buffer: every leg on that loop builds its packets (record
/// header, link header, IP and TCP headers, payload) straight into it, so a packet costs no
/// allocation and its payload one copy, from the buffer being relayed. It is written to
/// the file when 1 MiB is pending, every 100 ms, and at exit; only its loop touches it
/// (and `PcapRecorder.close`, after the loops have stopped).
final class PcapBatch: @unchecked Sendable {
    /// Room for the flush threshold plus one packet of the largest size.
    static let capacity = (1 << 20) + (128 << 10)
    static let flushThreshold = 1 << 20
    let file: PcapFile
    let storage: UnsafeMutableRawBufferPointer
    var used = 0

    init(file: PcapFile) {
        self.file = file
        storage = .allocate(byteCount: Self.capacity, alignment: 16)
    }

    deinit { storage.deallocate() }

    func flush() {
        guard used > 0 else { return }
        file.write(UnsafeRawBufferPointer(rebasing: storage[0..<used]))
        used = 0
    }

    /// The TCP payload one packet carries at most: what fits an IPv4 packet's 16-bit total
    /// length with its 20-byte IP and 20-byte TCP headers (IPv6 legs use the same).
    static let maxSegment = Int(UInt16.max) - 40
    /// Link (4), IP and TCP (20) headers of one packet, without the 16-byte record header.
    static func frameOverhead(v6: Bool) -> Int { 4 + (v6 ? 40 : 20) + 20 }

    /// TCP flags, as on the wire.
    static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, psh: UInt8 = 0x08, ack: UInt8 = 0x10

    /// Appends one packet from `from` to `to` with `payload` (at most `maxSegment` bytes),
    /// its frame cut at `captureLimit` bytes when given (the original length stays whole,
    /// as tcpdump's `-s` records it).
    func append(from: PcapEndpoint, to: PcapEndpoint, seq: UInt32, ack: UInt32?, flags: UInt8,
                payload: UnsafeRawBufferPointer, captureLimit: Int?, time: UInt64) {
        let (tcpPayload, keep) = appendHeaders(from: from, to: to, seq: seq, ack: ack, flags: flags, payloadLength: payload.count,
                                               captureLimit: captureLimit, time: time)
        if keep > 0, let src = payload.baseAddress { tcpPayload.copyMemory(from: src, byteCount: keep) }
        used += keep
        if used >= Self.flushThreshold { flush() }
    }

    /// A data packet of `count` bytes whose payload is not recorded (the kernel moved it,
    /// and this leg cuts payloads): the headers, lengths and sequence numbers only.
    func appendUnrecorded(from: PcapEndpoint, to: PcapEndpoint, seq: UInt32, ack: UInt32, count: Int, time: UInt64) {
        _ = appendHeaders(from: from, to: to, seq: seq, ack: ack, flags: Self.psh, payloadLength: count,
                          captureLimit: Self.frameOverhead(v6: from.v6), time: time)
        if used >= Self.flushThreshold { flush() }
    }

    /// A whole data packet of `count` bytes whose payload lies in `pipe` (the kernel moved
    /// it, and this leg records it): this loop's pending packets and the packet's headers
    /// are written, then the payload is spliced from the pipe into the file after them, all
    /// under the file's lock, so no other loop's batch comes between.
    func appendFromPipe(from: PcapEndpoint, to: PcapEndpoint, seq: UInt32, ack: UInt32, count: Int, pipe: Int32, time: UInt64) {
        _ = appendHeaders(from: from, to: to, seq: seq, ack: ack, flags: Self.psh, payloadLength: count, captureLimit: nil, time: time)
        file.write(UnsafeRawBufferPointer(rebasing: storage[0..<used]), thenFromPipe: pipe, count: count)
        used = 0
    }

    /// Builds one packet's record, link, IP and TCP headers at the end of the batch, for a
    /// TCP payload of `payloadLength` bytes, and counts them as used; returns where the
    /// payload goes and how many of its bytes the record keeps (the caller copies them and
    /// counts them).
    private func appendHeaders(from: PcapEndpoint, to: PcapEndpoint, seq: UInt32, ack: UInt32?, flags: UInt8,
                               payloadLength: Int, captureLimit: Int?, time: UInt64) -> (UnsafeMutableRawPointer, Int) {
        let v6 = from.v6
        let ipLength = v6 ? 40 : 20
        let frame = Self.frameOverhead(v6: v6) + payloadLength
        let captured = min(frame, captureLimit ?? frame)
        if used + 16 + min(captured, Self.frameOverhead(v6: v6) + Self.maxSegment) > Self.capacity { flush() }
        let p = storage.baseAddress! + used
        // Record header, host byte order (the global header's magic says which).
        p.storeBytes(of: UInt32(truncatingIfNeeded: time / 1_000_000_000), toByteOffset: 0, as: UInt32.self)
        p.storeBytes(of: UInt32(truncatingIfNeeded: (time % 1_000_000_000) / 1000), toByteOffset: 4, as: UInt32.self)
        p.storeBytes(of: UInt32(captured), toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: UInt32(frame), toByteOffset: 12, as: UInt32.self)
        // DLT_NULL: the address family in host order; 24 is what BSD and tshark use for IPv6.
        p.storeBytes(of: UInt32(v6 ? 24 : 2), toByteOffset: 16, as: UInt32.self)
        let ip = p + 20
        let tcpAndPayload = 20 + payloadLength
        if v6 {
            ip.storeBytes(of: UInt32(6 << 28).bigEndian, toByteOffset: 0, as: UInt32.self)
            ip.storeBytes(of: UInt16(tcpAndPayload).bigEndian, toByteOffset: 4, as: UInt16.self)
            ip.storeBytes(of: UInt8(6), toByteOffset: 6, as: UInt8.self)
            ip.storeBytes(of: UInt8(64), toByteOffset: 7, as: UInt8.self)
            from.copyAddress(to: ip + 8)
            to.copyAddress(to: ip + 24)
        } else {
            ip.storeBytes(of: UInt16(0x4500).bigEndian, toByteOffset: 0, as: UInt16.self)
            ip.storeBytes(of: UInt16(20 + tcpAndPayload).bigEndian, toByteOffset: 2, as: UInt16.self)
            ip.storeBytes(of: UInt32(0x0000_4000).bigEndian, toByteOffset: 4, as: UInt32.self)  // id 0, don't fragment
            ip.storeBytes(of: UInt16(0x4006).bigEndian, toByteOffset: 8, as: UInt16.self)  // TTL 64, TCP
            ip.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
            from.copyAddress(to: ip + 12)
            to.copyAddress(to: ip + 16)
            ip.storeBytes(of: Self.ipv4Checksum(UnsafeRawPointer(ip)).bigEndian, toByteOffset: 10, as: UInt16.self)
        }
        let tcp = ip + ipLength
        tcp.storeBytes(of: from.port.bigEndian, toByteOffset: 0, as: UInt16.self)
        tcp.storeBytes(of: to.port.bigEndian, toByteOffset: 2, as: UInt16.self)
        tcp.storeBytes(of: seq.bigEndian, toByteOffset: 4, as: UInt32.self)
        tcp.storeBytes(of: (ack ?? 0).bigEndian, toByteOffset: 8, as: UInt32.self)
        tcp.storeBytes(of: (UInt16(5 << 12) | UInt16(flags | (ack == nil ? 0 : Self.ack))).bigEndian, toByteOffset: 12, as: UInt16.self)
        tcp.storeBytes(of: UInt16.max, toByteOffset: 14, as: UInt16.self)  // window: no flow control to show
        tcp.storeBytes(of: UInt32(0), toByteOffset: 16, as: UInt32.self)  // checksum (not computed) and urgent pointer
        used += 16 + Self.frameOverhead(v6: v6)
        return (tcp + 20, captured - Self.frameOverhead(v6: v6))
    }

    /// RFC 791's header checksum, so tools that verify it find nothing wrong.
    static func ipv4Checksum(_ header: UnsafeRawPointer) -> UInt16 {
        var sum: UInt32 = 0
        for i in stride(from: 0, to: 20, by: 2) {
            sum &+= UInt32(UInt16(header.load(fromByteOffset: i, as: UInt8.self)) << 8 | UInt16(header.load(fromByteOffset: i + 1, as: UInt8.self)))
        }
        while sum > 0xffff { sum = (sum & 0xffff) &+ (sum >> 16) }
        return ~UInt16(sum)
    }
}

/// One end of a recorded TCP connection: its address (4 or 16 bytes, network order) and port.
struct PcapEndpoint {
    var v6: Bool
    /// The address bytes; an IPv4 address uses the first 4.
    var address: (UInt64, UInt64) = (0, 0)
    var port: UInt16

    init?(_ a: SocketAddress) {
        switch a {
        case .v4(let v4):
            v6 = false
            port = UInt16(bigEndian: v4.address.sin_port)
            withUnsafeBytes(of: v4.address.sin_addr) { src in
                withUnsafeMutableBytes(of: &address) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<4])) }
            }
        case .v6(let v6a):
            v6 = true
            port = UInt16(bigEndian: v6a.address.sin6_port)
            withUnsafeBytes(of: v6a.address.sin6_addr) { src in
                withUnsafeMutableBytes(of: &address) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<16])) }
            }
        case .unixDomainSocket:
            return nil
        }
    }

    func copyAddress(to p: UnsafeMutableRawPointer) {
        withUnsafeBytes(of: address) { p.copyMemory(from: $0.baseAddress!, byteCount: v6 ? 16 : 4) }
    }
}
