import NBDProtocol
import NIOCore
import Testing

/// Reply headers: simple (16 B), structured chunk (20 B), extended chunk (32 B).
@Suite struct ReplyTests {
    func read(_ bytes: ByteBuffer, simple: Bool = true, structured: Bool = true, extended: Bool = true) throws -> ReplyHeader {
        var b = bytes
        let h = try #require(try ReplyHeader.read(from: &b, allowSimple: simple, allowStructured: structured, allowExtended: extended))
        #expect(b.readableBytes == 0)
        expectBytes(serialized { h.write(to: &$0) }, bytes)
        return h
    }

    @Test func simpleReply() throws {
        let bytes = hex(
            "67446698",          // NBD_SIMPLE_REPLY_MAGIC
            "00000000",          // error: 0
            "0102030405060708"   // cookie
        )
        #expect(bytes.readableBytes == SimpleReplyHeader.length)
        let h = try read(bytes, structured: false, extended: false)
        #expect(h == .simple(SimpleReplyHeader(error: .ok, cookie: 0x0102_0304_0506_0708)))
        #expect(h.cookie == 0x0102_0304_0506_0708)
        // SimpleReplyHeader writes itself the same way.
        expectBytes(serialized { SimpleReplyHeader(error: .ok, cookie: 0x0102_0304_0506_0708).write(to: &$0) }, bytes)
    }

    @Test func simpleReplyErrors() throws {
        let cases: [(String, ErrorValue)] = [
            ("00000001", .eperm), ("00000005", .eio), ("0000000c", .enomem), ("00000016", .einval),
            ("0000001c", .enospc), ("0000004b", .eoverflow), ("0000005f", .enotsup), ("0000006c", .eshutdown),
            ("00000002", .unknown(2)),
        ]
        for (errorField, error) in cases {
            let h = try read(hex(
                "67446698",          // NBD_SIMPLE_REPLY_MAGIC
                errorField,          // error
                "ffffffffffffffff"   // cookie
            ))
            #expect(h == .simple(SimpleReplyHeader(error: error, cookie: .max)))
        }
    }

    @Test func structuredChunkHeader() throws {
        let bytes = hex(
            "668e33ef",          // NBD_STRUCTURED_REPLY_MAGIC
            "0001",              // flags: DONE
            "0001",              // type: OFFSET_DATA
            "0102030405060708",  // cookie
            "00000208"           // length 520
        )
        #expect(bytes.readableBytes == ReplyChunkHeader.structuredLength)
        let h = try read(bytes, simple: false, extended: false)
        let expected = ReplyChunkHeader(flags: .done, type: .offsetData, cookie: 0x0102_0304_0506_0708, length: 520)
        #expect(h == .chunk(expected))
        guard case .chunk(let c) = h else { return }
        #expect(c.isDone)
        #expect(!c.extended)
        #expect(c.offset == 0)
        #expect(c.wireLength == 20)
        expectBytes(serialized { expected.write(to: &$0) }, bytes)
    }

    @Test func structuredChunkEveryTypeAndFlag() throws {
        let types: [(String, ReplyChunkType)] = [
            ("0000", .none), ("0001", .offsetData), ("0002", .offsetHole), ("0005", .blockStatus),
            ("0006", .blockStatusExt), ("8001", .error), ("8002", .errorOffset),
            ("0003", .unknown(3)), ("8003", .unknown(0x8003)),
        ]
        for (typeField, type) in types {
            for (flagsField, flags) in [("0000", ReplyFlags()), ("0001", .done), ("0003", ReplyFlags(rawValue: 3))] {
                let h = try read(hex(
                    "668e33ef",          // NBD_STRUCTURED_REPLY_MAGIC
                    flagsField,          // flags
                    typeField,           // type
                    "00000000000000ff",  // cookie
                    "ffffffff"           // length 2^32 - 1
                ))
                #expect(h == .chunk(ReplyChunkHeader(flags: flags, type: type, cookie: 0xff, length: 0xffff_ffff)))
            }
        }
    }

    @Test func extendedChunkHeader() throws {
        let bytes = hex(
            "6e8a278c",          // NBD_EXTENDED_REPLY_MAGIC
            "0001",              // flags: DONE
            "0006",              // type: BLOCK_STATUS_EXT
            "0102030405060708",  // cookie
            "0000000000100000",  // offset echoed from the request: 1 MiB
            "0000000100000008"   // length 2^32 + 8
        )
        #expect(bytes.readableBytes == ReplyChunkHeader.extendedLength)
        let h = try read(bytes, simple: false, structured: false)
        let expected = ReplyChunkHeader(flags: .done, type: .blockStatusExt, cookie: 0x0102_0304_0506_0708,
                                        offset: 1 << 20, length: (1 << 32) + 8, extended: true)
        #expect(h == .chunk(expected))
        #expect(h.cookie == 0x0102_0304_0506_0708)
        guard case .chunk(let c) = h else { return }
        #expect(c.wireLength == 32)
        expectBytes(serialized { expected.write(to: &$0) }, bytes)
    }

    @Test func magicsOutsideWhatWasNegotiated() {
        let simple = hex("67446698", "00000000", "0000000000000001")  // magic, error, cookie
        var b = simple
        #expect(wireError {
            try ReplyHeader.read(from: &b, allowSimple: false, allowStructured: true, allowExtended: true)
        }?.badMagicValue == 0x6744_6698)

        var s = hex("668e33ef", "0001", "0000", "0000000000000001", "00000000")  // magic, flags, NONE, cookie, length
        #expect(wireError {
            try ReplyHeader.read(from: &s, allowSimple: true, allowStructured: false, allowExtended: false)
        }?.badMagicValue == 0x668e_33ef)

        var e = hex("6e8a278c", "0001", "0000", "0000000000000001",  // magic, flags, NONE, cookie
                    "0000000000000000", "0000000000000000")          // offset, length
        #expect(wireError {
            try ReplyHeader.read(from: &e, allowSimple: false, allowStructured: true, allowExtended: false)
        }?.badMagicValue == 0x6e8a_278c)

        var historic = hex("96744668", "00000000", "0000000000000001")  // historic reply magic, error, cookie
        #expect(wireError {
            try ReplyHeader.read(from: &historic, allowSimple: true, allowStructured: true, allowExtended: true)
        }?.badMagicValue == 0x9674_4668)

        // A request magic arriving on the reply side.
        var req = hex("25609513")  // NBD_REQUEST_MAGIC
        #expect(wireError {
            try ReplyHeader.read(from: &req, allowSimple: true, allowStructured: true, allowExtended: true)
        }?.badMagicValue == 0x2560_9513)
    }
}
