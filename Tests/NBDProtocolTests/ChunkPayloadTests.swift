import NBDProtocol
import NIOCore
import Testing

/// Reply chunk payloads, each inside a whole hand-written chunk (header + payload).
@Suite struct ChunkPayloadTests {
    /// Reads the chunk header, parses the payload that follows it, checks that the
    /// payload's `wireLength` agrees with the header and that header + payload serialize
    /// back to the same bytes. `data` is OFFSET_DATA's data, which the payload excludes.
    @discardableResult
    func check(_ bytes: ByteBuffer, type: ReplyChunkType, _ expected: ChunkPayload,
               sourceLocation: SourceLocation = #_sourceLocation) throws -> ReplyChunkHeader {
        var b = bytes
        let header = try #require(try ReplyHeader.read(from: &b, allowSimple: false, allowStructured: true, allowExtended: true),
                                  sourceLocation: sourceLocation)
        guard case .chunk(let chunk) = header else {
            Issue.record("not a chunk: \(header)", sourceLocation: sourceLocation)
            return ReplyChunkHeader(flags: [], type: type, cookie: 0, length: 0)
        }
        #expect(chunk.type == type, sourceLocation: sourceLocation)
        #expect(UInt64(b.readableBytes) == chunk.length, sourceLocation: sourceLocation)
        let payloadBytes = b
        let payload = try ChunkPayload.parse(type: chunk.type, payload: payloadBytes, totalLength: chunk.length)
        #expect(payload == expected, sourceLocation: sourceLocation)
        #expect(payload.wireLength == chunk.length, sourceLocation: sourceLocation)
        let out = serialized { out in
            chunk.write(to: &out)
            payload.write(to: &out)
            // What write leaves to the caller: OFFSET_DATA's data, an unknown chunk's bytes.
            let written = out.readableBytes - chunk.wireLength
            if written < payloadBytes.readableBytes {
                out.writeImmutableBuffer(payloadBytes.getSlice(at: payloadBytes.readerIndex + written,
                                                               length: payloadBytes.readableBytes - written)!)
            }
        }
        expectBytes(out, bytes, sourceLocation: sourceLocation)
        return chunk
    }

    @Test func none() throws {
        let c = try check(hex(
            "668e33ef",          // NBD_STRUCTURED_REPLY_MAGIC
            "0001",              // flags: DONE
            "0000",              // type: NONE
            "0000000000000001",  // cookie
            "00000000"           // length 0
        ), type: .none, .none)
        #expect(c.isDone)
    }

    @Test func offsetData() throws {
        try check(hex(
            "668e33ef",          // NBD_STRUCTURED_REPLY_MAGIC
            "0000",              // flags
            "0001",              // type: OFFSET_DATA
            "0000000000000002",  // cookie
            "0000000c",          // length 12
            "0000000000001000",  // offset 4096
            "deadbeef"           // 4 bytes of data
        ), type: .offsetData, .offsetData(offset: 4096, dataLength: 4))
        // The data itself is never buffered: the 8-byte prefix is enough.
        let prefixOnly = hex(
            "0000000000001000"  // offset 4096
        )
        #expect(try ChunkPayload.parse(type: .offsetData, payload: prefixOnly, totalLength: 12)
                == .offsetData(offset: 4096, dataLength: 4))
        #expect(ChunkPayload.offsetDataPrefix == 8)
    }

    @Test func offsetHole() throws {
        try check(hex(
            "668e33ef",          // NBD_STRUCTURED_REPLY_MAGIC
            "0001",              // flags: DONE
            "0002",              // type: OFFSET_HOLE
            "0000000000000003",  // cookie
            "0000000c",          // length 12
            "0000000000002000",  // offset 8192
            "00001000"           // hole size 4096
        ), type: .offsetHole, .offsetHole(offset: 8192, length: 4096))
    }

    @Test func blockStatus() throws {
        try check(hex(
            "668e33ef",          // NBD_STRUCTURED_REPLY_MAGIC
            "0001",              // flags: DONE
            "0005",              // type: BLOCK_STATUS
            "0000000000000004",  // cookie
            "00000014",          // length 20 = 4 + 2 * 8
            "00000001",          // context id 1
            "00010000", "00000000",  // extent 64 KiB, status 0 (allocated data)
            "00001000", "00000003"   // extent 4 KiB, status HOLE | ZERO
        ), type: .blockStatus, .blockStatus(contextID: 1, descriptors: [
            BlockDescriptor(length: 0x1_0000, status: 0),
            BlockDescriptor(length: 0x1000, status: BaseAllocation.hole | BaseAllocation.zero),
        ]))
    }

    @Test func blockStatusExt() throws {
        try check(hex(
            "6e8a278c",          // NBD_EXTENDED_REPLY_MAGIC
            "0001",              // flags: DONE
            "0006",              // type: BLOCK_STATUS_EXT
            "0000000000000005",  // cookie
            "0000000000000000",  // offset echoed
            "0000000000000028",  // length 40 = 8 + 2 * 16
            "00000002",          // context id 2
            "00000002",          // descriptor count 2
            "0000000100000000", "0000000000000000",  // extent 4 GiB, status 0
            "0000000000001000", "0000000100000001"   // extent 4 KiB, 64-bit status
        ), type: .blockStatusExt, .blockStatusExt(contextID: 2, descriptors: [
            BlockDescriptor(length: 1 << 32, status: 0),
            BlockDescriptor(length: 0x1000, status: 0x1_0000_0001),
        ]))
    }

    @Test func error() throws {
        try check(hex(
            "668e33ef",          // NBD_STRUCTURED_REPLY_MAGIC
            "0001",              // flags: DONE
            "8001",              // type: ERROR
            "0000000000000006",  // cookie
            "0000000a",          // length 10
            "00000005",          // error: EIO
            "0004",              // message length 4
            "6f6f7073"           // "oops"
        ), type: .error, .error(error: .eio, message: "oops"))
        // Same payload in an extended chunk, with an empty message.
        try check(hex(
            "6e8a278c",          // NBD_EXTENDED_REPLY_MAGIC
            "0001",              // flags: DONE
            "8001",              // type: ERROR
            "0000000000000006",  // cookie
            "0000000000001000",  // offset echoed
            "0000000000000006",  // length 6
            "0000006c",          // error: ESHUTDOWN
            "0000"               // message length 0
        ), type: .error, .error(error: .eshutdown, message: ""))
    }

    @Test func errorOffset() throws {
        try check(hex(
            "668e33ef",          // NBD_STRUCTURED_REPLY_MAGIC
            "0000",              // flags
            "8002",              // type: ERROR_OFFSET
            "0000000000000007",  // cookie
            "00000011",          // length 17
            "00000016",          // error: EINVAL
            "0003",              // message length 3
            "626164",            // "bad"
            "0000000000000200"   // offset 512
        ), type: .errorOffset, .errorOffset(error: .einval, message: "bad", offset: 512))
    }

    @Test func unknownErrorChunk() throws {
        // Bit 15 set: the request failed, the connection continues. It parses as an error.
        let c = try check(hex(
            "668e33ef",          // NBD_STRUCTURED_REPLY_MAGIC
            "0001",              // flags: DONE
            "8003",              // type 32771: unknown error chunk
            "0000000000000008",  // cookie
            "00000008",          // length 8
            "0000000c",          // error: ENOMEM
            "0002",              // message length 2
            "6e6f"               // "no"
        ), type: .unknown(0x8003), .error(error: .enomem, message: "no"))
        #expect(c.type.isError)
        #expect(c.type.name.contains("32771"))
    }

    @Test func unknownNonErrorChunk() throws {
        // Only the length is kept; the bytes stay the caller's (write emits none).
        try check(hex(
            "668e33ef",          // NBD_STRUCTURED_REPLY_MAGIC
            "0000",              // flags
            "0003",              // type 3: unassigned
            "0000000000000009",  // cookie
            "00000004",          // length 4
            "01020304"           // payload
        ), type: .unknown(3), .unknown(length: 4))
    }

    // MARK: payloads that do not fit their type

    @Test func blockStatusBadLength() {
        let cases: [(ByteBuffer, UInt64)] = [
            (hex("000001"), 3),                                   // not even a context id
            (hex("00000001"), 4),                                 // context id, no descriptor
            (hex("00000001", "00001000", "000000"), 11),          // id + 7 bytes
            (hex("00000001", "00001000", "00000000", "00"), 13),  // id + 9 bytes
        ]
        for (payload, length) in cases {
            let e = wireError { try ChunkPayload.parse(type: .blockStatus, payload: payload, totalLength: length) }
            #expect(e?.badLengthValue == length)
        }
    }

    @Test func blockStatusExtCountMismatch() {
        let descriptor = "0000000000001000" + "0000000000000000"  // u64 length 4096, u64 status 0
        let cases: [ByteBuffer] = [
            hex("00000001", "00000003", descriptor, descriptor),  // count 3, 2 descriptors
            hex("00000001", "00000001", descriptor, descriptor),  // count 1, 2 descriptors
            hex("00000001", "ffffffff", descriptor),              // count 2^32 - 1, 1 descriptor
            hex("00000001", "00000000"),                          // count 0, no descriptor
        ]
        for payload in cases {
            let e = wireError {
                try ChunkPayload.parse(type: .blockStatusExt, payload: payload, totalLength: UInt64(payload.readableBytes))
            }
            #expect(e?.isInconsistent == true)
        }
        // A length that is not 8 + 16n is a length error.
        let ragged = hex("00000001", "00000001", descriptor, "00")  // one byte too many
        #expect(wireError { try ChunkPayload.parse(type: .blockStatusExt, payload: ragged, totalLength: 25) }?.badLengthValue == 25)
    }

    @Test func errorMessageLengthDisagrees() {
        // Fewer bytes than the message length (and offset) announce: truncated.
        let short: [(ReplyChunkType, ByteBuffer)] = [
            (.error, hex("00000005", "0005", "6f6f7073")),                          // says 5, 4 follow
            (.errorOffset, hex("00000005", "0004", "6f6f7073")),                    // offset missing
            (.errorOffset, hex("00000005", "0000", "000000")),                      // 3 of the offset's 8 bytes
        ]
        for (type, payload) in short {
            let e = wireError { try ChunkPayload.parse(type: type, payload: payload, totalLength: UInt64(payload.readableBytes)) }
            #expect(e?.isTruncated == true)
        }
        // More bytes than announced: inconsistent.
        let long: [(ReplyChunkType, ByteBuffer)] = [
            (.error, hex("00000005", "0003", "6f6f7073")),                          // says 3, 4 follow
            (.errorOffset, hex("00000005", "0004", "6f6f7073", "0000000000000000", "00")),  // a byte too many
        ]
        for (type, payload) in long {
            let e = wireError { try ChunkPayload.parse(type: type, payload: payload, totalLength: UInt64(payload.readableBytes)) }
            #expect(e?.isInconsistent == true)
        }
        // Shorter than error + message length.
        #expect(wireError { try ChunkPayload.parse(type: .error, payload: hex("0000000500"), totalLength: 5) }?.isTruncated == true)
        #expect(wireError { try ChunkPayload.parse(type: .unknown(0x8003), payload: hex("00000005"), totalLength: 4) }?.isTruncated == true)
    }

    @Test func fixedLengthPayloadsWithOtherLengths() {
        #expect(wireError { try ChunkPayload.parse(type: .none, payload: hex("00000000"), totalLength: 4) }?.badLengthValue == 4)
        #expect(wireError { try ChunkPayload.parse(type: .offsetData, payload: hex("0000000000001000"), totalLength: 8) }?.badLengthValue == 8)
        #expect(wireError { try ChunkPayload.parse(type: .offsetData, payload: hex("00000000"), totalLength: 12) }?.isTruncated == true)
        #expect(wireError { try ChunkPayload.parse(type: .offsetHole, payload: hex("0000000000001000", "000010"), totalLength: 11) }?.badLengthValue == 11)
        #expect(wireError { try ChunkPayload.parse(type: .offsetHole, payload: hex("0000000000001000", "0000100000"), totalLength: 13) }?.badLengthValue == 13)
    }
}
