import NBDProtocol
import NIOCore
import Testing

/// Request headers: compact (28 B, u32 length) and extended (32 B, u64 length).
@Suite struct RequestTests {
    static let commands: [(String, NBDCommand)] = [
        ("0000", .read), ("0001", .write), ("0002", .disc), ("0003", .flush), ("0004", .trim),
        ("0005", .cache), ("0006", .writeZeroes), ("0007", .blockStatus), ("0008", .resize),
        ("0009", .unknown(9)), ("ffff", .unknown(0xffff)),
    ]

    static let flags: [(String, CommandFlags, [String])] = [
        ("0000", [], []),
        ("0001", .fua, ["FUA"]),
        ("0002", .noHole, ["NO_HOLE"]),
        ("0004", .df, ["DF"]),
        ("0008", .reqOne, ["REQ_ONE"]),
        ("0010", .fastZero, ["FAST_ZERO"]),
        ("0020", .payloadLen, ["PAYLOAD_LEN"]),
        ("0040", CommandFlags(rawValue: 0x40), ["BIT_6"]),
        ("8000", CommandFlags(rawValue: 0x8000), ["BIT_15"]),
        ("0013", [.fua, .noHole, .fastZero], ["FUA", "NO_HOLE", "FAST_ZERO"]),
    ]

    func parse(_ bytes: ByteBuffer, extended: Bool) throws -> RequestHeader {
        var b = bytes
        let r = try #require(try RequestHeader.read(from: &b, extended: extended))
        #expect(b.readableBytes == 0)
        #expect(r.extended == extended)
        #expect(r.wireLength == bytes.readableBytes)
        expectBytes(serialized { r.write(to: &$0) }, bytes)
        return r
    }

    @Test func compactWrite() throws {
        let bytes = hex(
            "25609513",          // NBD_REQUEST_MAGIC
            "0001",              // flags: FUA
            "0001",              // type: WRITE
            "0102030405060708",  // cookie
            "0000000000001000",  // offset 4096
            "00000200"           // length 512
        )
        #expect(bytes.readableBytes == RequestHeader.compactLength)
        let r = try parse(bytes, extended: false)
        #expect(r == RequestHeader(flags: .fua, command: .write, cookie: 0x0102_0304_0506_0708,
                                   offset: 4096, length: 512, extended: false))
        #expect(r.payloadLength == 512)
    }

    @Test func compactEveryCommand() throws {
        for (typeField, command) in Self.commands {
            let r = try parse(hex(
                "25609513",          // NBD_REQUEST_MAGIC
                "0000",              // flags
                typeField,           // type
                "000000000000002a",  // cookie 42
                "0000000000010000",  // offset 64 KiB
                "ffffffff"           // length 2^32 - 1
            ), extended: false)
            #expect(r.command == command)
            #expect(r.cookie == 42)
            #expect(r.offset == 0x1_0000)
            #expect(r.length == 0xffff_ffff)
            #expect(r.payloadLength == (command == .write ? 0xffff_ffff : 0))
        }
    }

    @Test func compactEveryFlag() throws {
        for (flagsField, flags, names) in Self.flags {
            let r = try parse(hex(
                "25609513",          // NBD_REQUEST_MAGIC
                flagsField,          // flags
                "0006",              // type: WRITE_ZEROES
                "ffffffffffffffff",  // cookie
                "0000000000000000",  // offset
                "00100000"           // length 1 MiB
            ), extended: false)
            #expect(r.flags == flags)
            #expect(r.flags.names == names)
            #expect(r.command == .writeZeroes)
            #expect(r.cookie == .max)
            #expect(r.payloadLength == 0)
        }
    }

    @Test func extendedWriteWithPayloadLen() throws {
        let bytes = hex(
            "21e41c71",          // NBD_EXTENDED_REQUEST_MAGIC
            "0021",              // flags: FUA | PAYLOAD_LEN
            "0001",              // type: WRITE
            "0102030405060708",  // cookie
            "0000010000000000",  // offset 1 TiB
            "0000000100000000"   // length 2^32: does not fit a compact header
        )
        #expect(bytes.readableBytes == RequestHeader.extendedLength)
        let r = try parse(bytes, extended: true)
        #expect(r == RequestHeader(flags: [.fua, .payloadLen], command: .write, cookie: 0x0102_0304_0506_0708,
                                   offset: 1 << 40, length: 1 << 32, extended: true))
        #expect(r.payloadLength == 1 << 32)
    }

    @Test func extendedBlockStatusWithoutPayload() throws {
        let r = try parse(hex(
            "21e41c71",          // NBD_EXTENDED_REQUEST_MAGIC
            "0008",              // flags: REQ_ONE
            "0007",              // type: BLOCK_STATUS
            "0000000000000007",  // cookie
            "0000000000000000",  // offset
            "0000000200000000"   // effect length 8 GiB
        ), extended: true)
        #expect(r.command == .blockStatus)
        #expect(r.length == 1 << 33)
        #expect(r.payloadLength == 0)  // without PAYLOAD_LEN the length is an effect length
    }

    @Test func extendedEveryCommand() throws {
        for (typeField, command) in Self.commands {
            let r = try parse(hex(
                "21e41c71",          // NBD_EXTENDED_REQUEST_MAGIC
                "0000",              // flags
                typeField,           // type
                "000000000000002a",  // cookie 42
                "0000000000010000",  // offset 64 KiB
                "0000000000001000"   // length 4096
            ), extended: true)
            #expect(r.command == command)
            #expect(r.length == 4096)
            // No PAYLOAD_LEN: no payload, except on WRITE, whose 4096 bytes of data follow
            // the header as qemu 10 sends them (qemu-nbd 10 frames them so; the spec text
            // says the flag MUST be set).
            #expect(r.payloadLength == (command == .write ? 4096 : 0))
        }
    }

    @Test func extendedEveryFlag() throws {
        for (flagsField, flags, names) in Self.flags {
            let r = try parse(hex(
                "21e41c71",          // NBD_EXTENDED_REQUEST_MAGIC
                flagsField,          // flags
                "0007",              // type: BLOCK_STATUS
                "0000000000000001",  // cookie
                "0000000000000200",  // offset 512
                "0000000000000010"   // length 16
            ), extended: true)
            #expect(r.flags == flags)
            #expect(r.flags.names == names)
            #expect(r.payloadLength == (flags.contains(.payloadLen) ? 16 : 0))
        }
    }

    @Test func magicMustMatchTheNegotiatedKind() {
        let extended = hex(
            "21e41c71",          // NBD_EXTENDED_REQUEST_MAGIC
            "0000", "0000",      // flags, type READ
            "0000000000000001",  // cookie
            "0000000000000000",  // offset
            "0000000000000200"   // length
        )
        var b = extended
        #expect(wireError { try RequestHeader.read(from: &b, extended: false) }?.badMagicValue == 0x21e4_1c71)
        #expect(b.readerIndex == 0)

        var c = hex(
            "25609513",          // NBD_REQUEST_MAGIC
            "0000", "0000",      // flags, type READ
            "0000000000000001",  // cookie
            "0000000000000000",  // offset
            "00000200"           // length
        )
        #expect(wireError { try RequestHeader.read(from: &c, extended: true) }?.badMagicValue == 0x2560_9513)

        // The historic magic is never valid; a bad magic is reported from its 4 bytes alone.
        var h = hex("12560953")  // historic request magic
        #expect(wireError { try RequestHeader.read(from: &h, extended: false) }?.badMagicValue == 0x1256_0953)
    }
}
