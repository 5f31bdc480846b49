import NBDProtocol
import NIOCore
import Testing

/// Server greetings (newstyle 18 B, oldstyle 152 B), client flags, EXPORT_NAME reply.
@Suite struct GreetingTests {
    @Test func newstyleGreeting() throws {
        let bytes = hex(
            "4e42444d41474943",  // NBDMAGIC
            "49484156454f5054",  // IHAVEOPT
            "0003"               // handshake flags: FIXED_NEWSTYLE | NO_ZEROES
        )
        #expect(bytes.readableBytes == ServerGreeting.newstyleLength)
        var b = bytes
        let g = try #require(try ServerGreeting.read(from: &b))
        #expect(g == .newstyle([.fixedNewstyle, .noZeroes]))
        #expect(b.readableBytes == 0)
        expectBytes(serialized { g.write(to: &$0) }, bytes)
    }

    @Test func newstyleGreetingKeepsUnknownBits() throws {
        let bytes = hex(
            "4e42444d41474943",  // NBDMAGIC
            "49484156454f5054",  // IHAVEOPT
            "8001"               // handshake flags: FIXED_NEWSTYLE | bit 15 (undefined)
        )
        var b = bytes
        let g = try #require(try ServerGreeting.read(from: &b))
        guard case .newstyle(let flags) = g else { Issue.record("not newstyle: \(g)"); return }
        #expect(flags.rawValue == 0x8001)
        #expect(flags.names == ["FIXED_NEWSTYLE", "BIT_15"])
        expectBytes(serialized { g.write(to: &$0) }, bytes)
    }

    @Test func oldstyleGreeting() throws {
        let bytes = hex(
            "4e42444d41474943",  // NBDMAGIC
            "0000420281861253",  // cliserv_magic
            "0000000040000000",  // export size: 1 GiB
            "0000_0ded",         // flags u32: global 0, transmission 0x0ded in the low 16 bits
            zeroHex(124)         // reserved zeroes
        )
        #expect(bytes.readableBytes == 152)
        #expect(ServerGreeting.oldstyleLength == 152)
        var b = bytes
        let g = try #require(try ServerGreeting.read(from: &b))
        #expect(g == .oldstyle(OldstyleGreeting(size: 1 << 30, globalAndTransmissionFlags: 0x0ded)))
        guard case .oldstyle(let o) = g else { return }
        #expect(o.transmissionFlags == [.hasFlags, .sendFlush, .sendFUA, .sendTrim, .sendWriteZeroes,
                                        .sendDF, .canMultiConn, .sendCache, .sendFastZero])
        #expect(!o.reservedNonZero)
        #expect(b.readableBytes == 0)
        expectBytes(serialized { g.write(to: &$0) }, bytes)
    }

    @Test func oldstyleFlagsHighHalfIsNotTransmissionFlags() throws {
        let bytes = hex(
            "4e42444d41474943",  // NBDMAGIC
            "0000420281861253",  // cliserv_magic
            "ffffffffffffffff",  // export size: 2^64 - 1
            "0001_0003",         // flags u32: high half 0x0001, transmission HAS_FLAGS | READ_ONLY
            zeroHex(124)         // reserved zeroes
        )
        var b = bytes
        let g = try #require(try ServerGreeting.read(from: &b))
        guard case .oldstyle(let o) = g else { Issue.record("not oldstyle: \(g)"); return }
        #expect(o.size == .max)
        #expect(o.globalAndTransmissionFlags == 0x0001_0003)
        #expect(o.transmissionFlags == [.hasFlags, .readOnly])
        expectBytes(serialized { g.write(to: &$0) }, bytes)
    }

    @Test func oldstyleNonZeroReservedIsReported() throws {
        var b = hex(
            "4e42444d41474943",  // NBDMAGIC
            "0000420281861253",  // cliserv_magic
            "0000000000100000",  // export size: 1 MiB
            "00000001",          // flags: HAS_FLAGS
            zeroHex(123), "01"   // reserved bytes, the last one not zero
        )
        let g = try #require(try ServerGreeting.read(from: &b))
        guard case .oldstyle(let o) = g else { Issue.record("not oldstyle: \(g)"); return }
        #expect(o.reservedNonZero)
        #expect(o.size == 1 << 20)
        #expect(b.readableBytes == 0)
    }

    @Test func badFirstMagic() {
        var b = hex(
            "4e42444d41474944",  // NBDMAGIC with the last byte wrong
            "49484156454f5054",  // IHAVEOPT
            "0001"               // handshake flags
        )
        #expect(wireError { try ServerGreeting.read(from: &b) }?.badMagicValue == 0x4e42_444d_4147_4944)
    }

    @Test func badSecondMagic() {
        var b = hex(
            "4e42444d41474943",  // NBDMAGIC
            "0003e889045565a9",  // option reply magic where IHAVEOPT or cliserv_magic belongs
            "0001"               // handshake flags
        )
        #expect(wireError { try ServerGreeting.read(from: &b) }?.badMagicValue == 0x0003_e889_0455_65a9)
    }

    @Test func clientFlags() {
        // Client flags have no reader of their own: a u32 after the greeting.
        let bytes = hex(
            "00000003"  // client flags: C_FIXED_NEWSTYLE | C_NO_ZEROES
        )
        var b = bytes
        let flags = ClientFlags(rawValue: b.readInteger()!)
        #expect(flags == [.fixedNewstyle, .noZeroes])
        #expect(flags.names == ["C_FIXED_NEWSTYLE", "C_NO_ZEROES"])
        expectBytes(serialized { $0.writeInteger(flags.rawValue) }, bytes)

        var unknown = hex(
            "80000001"  // client flags: C_FIXED_NEWSTYLE | bit 31 (server must drop)
        )
        let u = ClientFlags(rawValue: unknown.readInteger()!)
        #expect(u.subtracting(.known).rawValue == 0x8000_0000)
        #expect(u.names == ["C_FIXED_NEWSTYLE", "BIT_31"])
    }

    @Test func exportNameReplyWithZeroes() throws {
        let bytes = hex(
            "0000000100000000",  // export size: 4 GiB
            "05ed",              // transmission flags
            zeroHex(124)         // zeroes (NO_ZEROES not agreed)
        )
        #expect(bytes.readableBytes == 134)
        #expect(ExportNameReply.length(zeroesOmitted: false) == 134)
        var b = bytes
        let r = try #require(ExportNameReply.read(from: &b, zeroesOmitted: false))
        #expect(r == ExportNameReply(size: 1 << 32, flags: TransmissionFlags(rawValue: 0x05ed), zeroesOmitted: false))
        #expect(r.flags.contains(.sendTrim))
        #expect(!r.flags.contains(.sendFastZero))
        #expect(b.readableBytes == 0)
        expectBytes(serialized { r.write(to: &$0) }, bytes)
    }

    @Test func exportNameReplyWithoutZeroes() throws {
        let bytes = hex(
            "0000000000000200",  // export size: 512
            "0003"               // transmission flags: HAS_FLAGS | READ_ONLY
        )
        #expect(ExportNameReply.length(zeroesOmitted: true) == 10)
        var b = bytes
        b.writeBytes([0xaa])  // the first byte of the next message stays unread
        let r = try #require(ExportNameReply.read(from: &b, zeroesOmitted: true))
        #expect(r == ExportNameReply(size: 512, flags: [.hasFlags, .readOnly], zeroesOmitted: true))
        #expect(b.readableBytes == 1)
        expectBytes(serialized { r.write(to: &$0) }, bytes)
    }
}
