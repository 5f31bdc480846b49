import NBDProtocol
import NIOCore
import Testing

/// Every fixed-size header reader, fed one byte at a time: each proper prefix must give
/// nil without consuming anything, the full message must parse and consume exactly its
/// bytes. The buffer starts with already-consumed bytes so the reader index is not 0.
func expectByteAtATime<T: Equatable>(_ bytes: ByteBuffer, _ expected: T,
                                     sourceLocation: SourceLocation = #_sourceLocation,
                                     read: (inout ByteBuffer) throws -> T?) throws {
    var buffer = hex("a5a5a5")  // bytes of an earlier message, already read
    buffer.moveReaderIndex(forwardBy: 3)
    let start = buffer.readerIndex
    let all = Array(bytes.readableBytesView)
    for (i, byte) in all.enumerated() {
        buffer.writeInteger(byte)
        if i < all.count - 1 {
            let r = try read(&buffer)
            #expect(r == nil, "prefix of \(i + 1) of \(all.count) bytes parsed", sourceLocation: sourceLocation)
            #expect(buffer.readerIndex == start, "prefix of \(i + 1) bytes moved the reader index", sourceLocation: sourceLocation)
            if r != nil { return }
        }
    }
    buffer.writeInteger(UInt8(0x5a))  // the next message's first byte must stay unread
    let value = try read(&buffer)
    #expect(value == expected, sourceLocation: sourceLocation)
    #expect(buffer.readerIndex == start + all.count, sourceLocation: sourceLocation)
    #expect(buffer.readableBytes == 1, sourceLocation: sourceLocation)
}

@Suite struct PartialReadTests {
    @Test func newstyleGreeting() throws {
        try expectByteAtATime(hex(
            "4e42444d41474943",  // NBDMAGIC
            "49484156454f5054",  // IHAVEOPT
            "0001"               // handshake flags: FIXED_NEWSTYLE
        ), ServerGreeting.newstyle(.fixedNewstyle)) { try ServerGreeting.read(from: &$0) }
    }

    @Test func oldstyleGreeting() throws {
        try expectByteAtATime(hex(
            "4e42444d41474943",  // NBDMAGIC
            "0000420281861253",  // cliserv_magic
            "0000000000100000",  // size 1 MiB
            "00000001",          // flags: HAS_FLAGS
            zeroHex(124)         // reserved
        ), ServerGreeting.oldstyle(OldstyleGreeting(size: 1 << 20, globalAndTransmissionFlags: 1))) {
            try ServerGreeting.read(from: &$0)
        }
    }

    @Test func optionHeader() throws {
        try expectByteAtATime(hex(
            "49484156454f5054",  // IHAVEOPT
            "00000007",          // option: GO
            "00000006"           // data length
        ), OptionHeader(option: .go, dataLength: 6)) { try OptionHeader.read(from: &$0) }
    }

    @Test func optionReplyHeader() throws {
        try expectByteAtATime(hex(
            "0003e889045565a9",  // option reply magic
            "00000007",          // option: GO
            "00000001",          // NBD_REP_ACK
            "00000000"           // data length
        ), OptionReplyHeader(option: .go, type: .ack, dataLength: 0)) { try OptionReplyHeader.read(from: &$0) }
    }

    @Test func exportNameReply() throws {
        try expectByteAtATime(hex(
            "0000000000100000",  // size 1 MiB
            "0003",              // transmission flags
            zeroHex(124)         // zeroes
        ), ExportNameReply(size: 1 << 20, flags: [.hasFlags, .readOnly], zeroesOmitted: false)) {
            ExportNameReply.read(from: &$0, zeroesOmitted: false)
        }
        try expectByteAtATime(hex(
            "0000000000100000",  // size 1 MiB
            "0003"               // transmission flags
        ), ExportNameReply(size: 1 << 20, flags: [.hasFlags, .readOnly], zeroesOmitted: true)) {
            ExportNameReply.read(from: &$0, zeroesOmitted: true)
        }
    }

    @Test func compactRequest() throws {
        try expectByteAtATime(hex(
            "25609513",          // NBD_REQUEST_MAGIC
            "0001",              // flags: FUA
            "0001",              // type: WRITE
            "0000000000000001",  // cookie
            "0000000000000200",  // offset
            "00000200"           // length
        ), RequestHeader(flags: .fua, command: .write, cookie: 1, offset: 512, length: 512)) {
            try RequestHeader.read(from: &$0, extended: false)
        }
    }

    @Test func extendedRequest() throws {
        try expectByteAtATime(hex(
            "21e41c71",          // NBD_EXTENDED_REQUEST_MAGIC
            "0020",              // flags: PAYLOAD_LEN
            "0001",              // type: WRITE
            "0000000000000001",  // cookie
            "0000000000000200",  // offset
            "0000000000000200"   // length
        ), RequestHeader(flags: .payloadLen, command: .write, cookie: 1, offset: 512, length: 512, extended: true)) {
            try RequestHeader.read(from: &$0, extended: true)
        }
    }

    @Test func simpleReply() throws {
        try expectByteAtATime(hex(
            "67446698",          // NBD_SIMPLE_REPLY_MAGIC
            "00000016",          // error: EINVAL
            "0000000000000001"   // cookie
        ), ReplyHeader.simple(SimpleReplyHeader(error: .einval, cookie: 1))) {
            try ReplyHeader.read(from: &$0, allowSimple: true, allowStructured: true, allowExtended: false)
        }
    }

    @Test func structuredReply() throws {
        try expectByteAtATime(hex(
            "668e33ef",          // NBD_STRUCTURED_REPLY_MAGIC
            "0001",              // flags: DONE
            "0000",              // type: NONE
            "0000000000000001",  // cookie
            "00000000"           // length
        ), ReplyHeader.chunk(ReplyChunkHeader(flags: .done, type: .none, cookie: 1, length: 0))) {
            try ReplyHeader.read(from: &$0, allowSimple: true, allowStructured: true, allowExtended: false)
        }
    }

    @Test func extendedReply() throws {
        try expectByteAtATime(hex(
            "6e8a278c",          // NBD_EXTENDED_REPLY_MAGIC
            "0001",              // flags: DONE
            "0000",              // type: NONE
            "0000000000000001",  // cookie
            "0000000000000200",  // offset
            "0000000000000000"   // length
        ), ReplyHeader.chunk(ReplyChunkHeader(flags: .done, type: .none, cookie: 1, offset: 512, length: 0, extended: true))) {
            try ReplyHeader.read(from: &$0, allowSimple: false, allowStructured: false, allowExtended: true)
        }
    }
}
