import NBDCapture
import NIOCore
import Testing

/// Each supported link layer, VLAN tags, IPv4/IPv6 header details: the same TCP
/// segment must come out of every wrapping.
struct LinkLayerTests {
    static let payload: [UInt8] = Array("NBDMAGIC".utf8)
    let tcp4 = tcpBytes(serverV4, clientV4, seq: 7, ack: 9, flags: [.ack, .psh], payload: LinkLayerTests.payload)
    let tcp6 = tcpBytes(serverV6, clientV6, seq: 7, ack: 9, flags: [.ack, .psh], payload: LinkLayerTests.payload)
    var v4: [UInt8] { ipv4(serverV4.address, clientV4.address, tcp4) }
    var v6: [UInt8] { ipv6(serverV6.address, clientV6.address, tcp6) }

    func segment(_ bytes: [UInt8], _ linkType: LinkType, sourceLocation: SourceLocation = #_sourceLocation) -> TCPSegment? {
        switch FrameParser.parse(ByteBuffer(bytes: bytes), linkType: linkType) {
        case .tcp(let s): return s
        case .skipped(let r):
            Issue.record("skipped: \(r)", sourceLocation: sourceLocation)
            return nil
        }
    }

    func skipReason(_ bytes: [UInt8], _ linkType: LinkType) -> SkipReason? {
        if case .skipped(let r) = FrameParser.parse(ByteBuffer(bytes: bytes), linkType: linkType) { return r }
        return nil
    }

    func check(_ s: TCPSegment?, v6: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let s else { return }
        #expect(s.source == (v6 ? serverV6 : serverV4), sourceLocation: sourceLocation)
        #expect(s.destination == (v6 ? clientV6 : clientV4), sourceLocation: sourceLocation)
        #expect(s.sequenceNumber == 7 && s.acknowledgmentNumber == 9 && s.flags == [.ack, .psh], sourceLocation: sourceLocation)
        #expect(Array(s.payload.readableBytesView) == LinkLayerTests.payload && s.missingPayloadBytes == 0,
                sourceLocation: sourceLocation)
    }

    @Test func ethernetWithAndWithoutVLANTags() {
        check(segment(ethernet(v4), .ethernet))
        check(segment(ethernet(v6, etherType: 0x86DD), .ethernet), v6: true)
        check(segment(ethernet(v4, vlans: [100]), .ethernet))
        // 802.1ad outer tag, 802.1Q inner tag.
        let qinq = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1] + be16(0x88A8) + be16(10) + be16(0x8100) + be16(20) + be16(0x86DD) + v6
        check(segment(qinq, .ethernet), v6: true)
        #expect(skipReason(ethernet(v4, vlans: [1, 2, 3]), .ethernet) == .notIP)
        #expect(skipReason(ethernet(v4, etherType: 0x0806), .ethernet) == .notIP)  // ARP
        #expect(skipReason(Array(ethernet(v4).prefix(13)), .ethernet) == .linkHeaderTruncated)
    }

    @Test func bsdLoopbackFamiliesInEitherByteOrder() {
        check(segment([2, 0, 0, 0] + v4, .null))  // little-endian host
        check(segment([0, 0, 0, 2] + v4, .null))  // big-endian host
        check(segment([0, 0, 0, 2] + v4, .loop))
        for family: UInt8 in [10, 24, 28, 30] {
            check(segment([family, 0, 0, 0] + v6, .null), v6: true)
            check(segment([0, 0, 0, family] + v6, .loop), v6: true)
        }
        #expect(skipReason([7, 0, 0, 0] + v4, .null) == .notIP)
        #expect(skipReason([2, 0], .null) == .linkHeaderTruncated)
    }

    @Test func linuxCookedV1AndV2() {
        let sll: [UInt8] = [0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]
        check(segment(sll + be16(0x0800) + v4, .linuxSLL))
        check(segment(sll + be16(0x86DD) + v6, .linuxSLL), v6: true)
        let sll2Tail: [UInt8] = [0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]
        check(segment(be16(0x0800) + sll2Tail + v4, .linuxSLL2))
        check(segment(be16(0x86DD) + sll2Tail + v6, .linuxSLL2), v6: true)
        #expect(skipReason(Array((be16(0x0800) + sll2Tail).prefix(19)), .linuxSLL2) == .linkHeaderTruncated)
        #expect(skipReason(sll + be16(0x0806) + v4, .linuxSLL) == .notIP)
    }

    @Test func rawIPLinkTypes() {
        for lt in [LinkType.raw, .rawLinktype] {
            check(segment(v4, lt))
            check(segment(v6, lt), v6: true)
            #expect(skipReason([0x50] + v4.dropFirst(), lt) == .notIP)
        }
        check(segment(v4, .ipv4))
        check(segment(v6, .ipv6), v6: true)
        #expect(skipReason(v6, .ipv4) == .ipHeaderInvalid)
        #expect(skipReason(v4, LinkType(rawValue: 147)) == .unsupportedLinkType)
        #expect(skipReason([], .raw) == .emptyFrame)
    }

    @Test func ethernetPaddingIsNotPayload() throws {
        // 2 payload bytes: 14 + 20 + 20 + 2 = 56 bytes, padded to the 60-byte minimum.
        let t = tcpBytes(clientV4, serverV4, seq: 1, flags: .ack, payload: [0xAA, 0xBB])
        let padded = ethernet(ipv4(clientV4.address, serverV4.address, t)) + [0, 0, 0, 0]
        let s = try #require(segment(padded, .ethernet))
        #expect(Array(s.payload.readableBytesView) == [0xAA, 0xBB])
        let bare = tcpBytes(clientV4, serverV4, seq: 1, flags: .ack, payload: [])
        let s2 = try #require(segment(ethernet(ipv4(clientV4.address, serverV4.address, bare)) + [0, 0, 0, 0, 0, 0], .ethernet))
        #expect(s2.payload.readableBytes == 0)
    }

    @Test func ipv4HeaderDetails() throws {
        // Options (IHL 6) are skipped.
        var withOptions = ipv4(clientV4.address, serverV4.address, tcp4, totalLength: 24 + tcp4.count)
        withOptions[0] = 0x46
        withOptions.insert(contentsOf: [1, 1, 1, 0], at: 20)
        #expect(segment(withOptions, .ipv4)?.payload.readableBytes == LinkLayerTests.payload.count)
        // Fragments: the first (MF set, offset 0) is parsed, later ones are skipped.
        #expect(segment(ipv4(serverV4.address, clientV4.address, tcp4, fragment: 0x2000), .ipv4) != nil)
        #expect(skipReason(ipv4(serverV4.address, clientV4.address, tcp4, fragment: 0x2000 | 185), .ipv4) == .ipFragment)
        #expect(skipReason(ipv4(serverV4.address, clientV4.address, tcp4, fragment: 3), .ipv4) == .ipFragment)
        #expect(skipReason(ipv4(serverV4.address, clientV4.address, [0, 53, 0, 53, 0, 8, 0, 0], proto: 17), .ipv4) == .notTCP)
        var badIHL = v4
        badIHL[0] = 0x44
        #expect(skipReason(badIHL, .ipv4) == .ipHeaderInvalid)
        #expect(skipReason(ipv4(serverV4.address, clientV4.address, tcp4, totalLength: 10), .ipv4) == .ipHeaderInvalid)
        // Total length 0 (TSO capture): the captured bytes are the packet.
        check(segment(ipv4(serverV4.address, clientV4.address, tcp4, totalLength: 0), .ipv4))
        // Total length larger than captured: the rest is missing payload.
        let long = try #require(segment(ipv4(serverV4.address, clientV4.address, tcp4, totalLength: 20 + tcp4.count + 100), .ipv4))
        #expect(long.missingPayloadBytes == 100 && long.payload.readableBytes == LinkLayerTests.payload.count)
    }

    @Test func ipv6ExtensionHeadersAreSkipped() {
        let hopByHop: (UInt8, [UInt8]) = (0, [0, 0, 1, 4, 0, 0, 0, 0])
        let routing: (UInt8, [UInt8]) = (43, [0, 1, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 8))  // 16 bytes
        let destOpts: (UInt8, [UInt8]) = (60, [0, 0, 1, 4, 0, 0, 0, 0])
        let firstFragment: (UInt8, [UInt8]) = (44, [0, 0, 0, 1, 0, 0, 0, 42])
        let p = ipv6(serverV6.address, clientV6.address, tcp6, extensions: [hopByHop, routing, destOpts, firstFragment])
        check(segment(p, .ipv6), v6: true)
        let laterFragment: (UInt8, [UInt8]) = (44, [0, 0, 0x05, 0x01, 0, 0, 0, 42])
        #expect(skipReason(ipv6(serverV6.address, clientV6.address, tcp6, extensions: [laterFragment]), .ipv6) == .ipFragment)
        #expect(skipReason(ipv6(serverV6.address, clientV6.address, [1, 2, 3, 4, 5, 6, 7, 8], next: 17), .ipv6) == .notTCP)
        // An extension header running past the packet.
        let huge: (UInt8, [UInt8]) = (60, [0, 200, 0, 0, 0, 0, 0, 0])
        #expect(skipReason(ipv6(serverV6.address, clientV6.address, tcp6, extensions: [huge]), .ipv6) == .ipHeaderTruncated)
        // Payload length beyond the capture: the rest is missing.
        let cut = ipv6(serverV6.address, clientV6.address, tcp6, payloadLength: tcp6.count + 50)
        #expect(segment(cut, .ipv6)?.missingPayloadBytes == 50)
    }

    @Test func tcpHeaderDetails() {
        let opts = tcpBytes(serverV4, clientV4, seq: 7, ack: 9, flags: [.ack, .psh], payload: LinkLayerTests.payload, optionWords: 3)
        check(segment(ipv4(serverV4.address, clientV4.address, opts), .ipv4))
        var small = tcp4
        small[12] = 0x40  // data offset 4 words
        #expect(skipReason(ipv4(serverV4.address, clientV4.address, small), .ipv4) == .tcpHeaderInvalid)
        var big = tcp4
        big[12] = 0xF0  // 60 bytes of header, more than the segment
        #expect(skipReason(ipv4(serverV4.address, clientV4.address, big), .ipv4) == .tcpHeaderInvalid)
        #expect(skipReason(ipv4(serverV4.address, clientV4.address, Array(tcp4.prefix(19))), .ipv4) == .tcpHeaderTruncated)
    }

    @Test func addressesPrintConventionally() {
        #expect(serverV4.description == "10.0.0.2:10809")
        #expect(Endpoint(address: .v6(0, 1), port: 80).description == "[::1]:80")
        #expect(IPAddress.v6(0x2001_0db8_0000_0000, 0x0000_0000_0000_0001).description == "2001:db8::1")
        #expect(IPAddress.v6(0x2001_0db8_0000_0001, 0x0000_0001_0000_0001).description == "2001:db8:0:1:0:1:0:1")
        #expect(IPAddress.v6(0, 0xffff_7f00_0001).description == "::ffff:127.0.0.1")
        #expect(IPAddress.v6(0, 0).description == "::")
    }
}
