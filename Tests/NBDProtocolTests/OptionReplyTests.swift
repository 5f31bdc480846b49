import NBDProtocol
import NIOCore
import Testing

/// Option replies: the 20-byte header and every reply type's data.
@Suite struct OptionReplyTests {
    /// Parses one whole option reply (header + data), requiring the data length to match.
    func parseReply(_ bytes: ByteBuffer) throws -> (OptionReplyHeader, OptionReplyData) {
        var b = bytes
        let header = try #require(try OptionReplyHeader.read(from: &b))
        #expect(b.readableBytes == Int(header.dataLength))
        let data = try OptionReplyData.parse(type: header.type, data: b.readSlice(length: Int(header.dataLength))!)
        return (header, data)
    }

    func reserialize(_ header: OptionReplyHeader, _ data: OptionReplyData) -> ByteBuffer {
        serialized { header.write(to: &$0); data.write(to: &$0) }
    }

    /// Parses, checks the expected values and the exact round trip.
    func check(_ bytes: ByteBuffer, option: NBDOption, type: OptionReplyType, data: OptionReplyData,
               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (h, d) = try parseReply(bytes)
        #expect(h.option == option, sourceLocation: sourceLocation)
        #expect(h.type == type, sourceLocation: sourceLocation)
        #expect(Int(h.dataLength) == bytes.readableBytes - OptionReplyHeader.length, sourceLocation: sourceLocation)
        #expect(d == data, sourceLocation: sourceLocation)
        expectBytes(reserialize(h, d), bytes, sourceLocation: sourceLocation)
    }

    @Test func header() throws {
        let bytes = hex(
            "0003e889045565a9",  // option reply magic
            "00000007",          // option echoed: GO
            "80000001",          // reply type: ERR_UNSUP
            "00000000"           // data length
        )
        var b = bytes
        let h = try #require(try OptionReplyHeader.read(from: &b))
        #expect(h == OptionReplyHeader(option: .go, type: .errUnsup, dataLength: 0))
        #expect(h.type.isError)
        #expect(b.readableBytes == 0)
        expectBytes(serialized { h.write(to: &$0) }, bytes)
    }

    @Test func headerBadMagic() {
        var b = hex(
            "49484156454f5054",  // IHAVEOPT (a client option) where the reply magic belongs
            "00000001",          // option
            "00000001",          // reply type
            "00000000"           // data length
        )
        #expect(wireError { try OptionReplyHeader.read(from: &b) }?.badMagicValue == NBDMagic.iHaveOpt)
    }

    @Test func ack() throws {
        try check(hex(
            "0003e889045565a9",  // option reply magic
            "00000008",          // option: STRUCTURED_REPLY
            "00000001",          // NBD_REP_ACK
            "00000000"           // data length 0
        ), option: .structuredReply, type: .ack, data: .ack)
        // ACK carries no data.
        #expect(wireError { try OptionReplyData.parse(type: .ack, data: hex("00")) }?.badLengthValue == 1)
    }

    @Test func serverWithDescription() throws {
        try check(hex(
            "0003e889045565a9",    // option reply magic
            "00000003",            // option: LIST
            "00000002",            // NBD_REP_SERVER
            "00000011",            // data length 17
            "00000004",            // name length
            "6469736b",            // "disk"
            "4d61696e206469736b"   // description "Main disk" (rest of data)
        ), option: .list, type: .server, data: .server(name: "disk", description: "Main disk"))
    }

    @Test func serverWithoutDescription() throws {
        try check(hex(
            "0003e889045565a9",  // option reply magic
            "00000003",          // option: LIST
            "00000002",          // NBD_REP_SERVER
            "00000008",          // data length 8
            "00000004",          // name length
            "6469736b"           // "disk"
        ), option: .list, type: .server, data: .server(name: "disk", description: ""))
        // A name length beyond the data is refused.
        #expect(wireError { try OptionReplyData.parse(type: .server, data: hex("00000009", "6469736b")) }?.isTruncated == true)
    }

    @Test func infoExport() throws {
        try check(hex(
            "0003e889045565a9",  // option reply magic
            "00000007",          // option: GO
            "00000003",          // NBD_REP_INFO
            "0000000c",          // data length 12
            "0000",              // NBD_INFO_EXPORT
            "0000000040000000",  // export size 1 GiB
            "05ed"               // transmission flags
        ), option: .go, type: .info, data: .info(.export(size: 1 << 30, flags: TransmissionFlags(rawValue: 0x05ed))))
    }

    @Test func infoName() throws {
        try check(hex(
            "0003e889045565a9",  // option reply magic
            "00000006",          // option: INFO
            "00000003",          // NBD_REP_INFO
            "00000006",          // data length 6
            "0001",              // NBD_INFO_NAME
            "6469736b"           // "disk"
        ), option: .info, type: .info, data: .info(.name("disk")))
    }

    @Test func infoDescription() throws {
        try check(hex(
            "0003e889045565a9",  // option reply magic
            "00000007",          // option: GO
            "00000003",          // NBD_REP_INFO
            "00000008",          // data length 8
            "0002",              // NBD_INFO_DESCRIPTION
            "61206469736b"       // "a disk"
        ), option: .go, type: .info, data: .info(.description("a disk")))
    }

    @Test func infoBlockSize() throws {
        try check(hex(
            "0003e889045565a9",  // option reply magic
            "00000007",          // option: GO
            "00000003",          // NBD_REP_INFO
            "0000000e",          // data length 14
            "0003",              // NBD_INFO_BLOCK_SIZE
            "00000200",          // minimum 512
            "00001000",          // preferred 4096
            "02000000"           // maximum payload 32 MiB
        ), option: .go, type: .info, data: .info(.blockSize(minimum: 512, preferred: 4096, maximum: 1 << 25)))
    }

    @Test func infoUnknownType() throws {
        // Only type and length of an unknown info are kept; the writer emits zeroes, so
        // the round trip is exact for zero data only.
        try check(hex(
            "0003e889045565a9",  // option reply magic
            "00000007",          // option: GO
            "00000003",          // NBD_REP_INFO
            "00000005",          // data length 5
            "0004",              // info type 4: unknown
            "000000"             // 3 bytes of its payload
        ), option: .go, type: .info, data: .info(.unknown(type: 4, length: 3)))
        let nonZero = try InfoPayload.parse(hex("1234", "abcd"))
        #expect(nonZero == .unknown(type: 0x1234, length: 2))
        #expect(nonZero.type == .unknown(0x1234))
    }

    @Test func infoWrongLength() {
        // NBD_INFO_EXPORT must be 12 bytes in all (10 after the type).
        #expect(wireError { try InfoPayload.parse(hex("0000", "000000004000000005")) }?.badLengthValue == 9)
        #expect(wireError { try InfoPayload.parse(hex("0000", "0000000040000000", "05ed00")) }?.badLengthValue == 11)
        // NBD_INFO_BLOCK_SIZE must be 14 bytes in all (12 after the type).
        #expect(wireError { try InfoPayload.parse(hex("0003", "00000200", "00001000", "020000")) }?.badLengthValue == 11)
        #expect(wireError { try InfoPayload.parse(hex("0003", "00000200", "00001000", "02000000", "00")) }?.badLengthValue == 13)
        // Not even a type.
        #expect(wireError { try InfoPayload.parse(hex("00")) }?.isTruncated == true)
        // Through OptionReplyData as well.
        #expect(wireError { try OptionReplyData.parse(type: .info, data: hex("0000", "00")) }?.badLengthValue == 1)
    }

    @Test func metaContext() throws {
        try check(hex(
            "0003e889045565a9",              // option reply magic
            "0000000a",                      // option: SET_META_CONTEXT
            "00000004",                      // NBD_REP_META_CONTEXT
            "00000013",                      // data length 19
            "00000001",                      // context id 1
            "626173653a616c6c6f636174696f6e" // "base:allocation"
        ), option: .setMetaContext, type: .metaContext, data: .metaContext(id: 1, name: "base:allocation"))
        #expect(wireError { try OptionReplyData.parse(type: .metaContext, data: hex("000001")) }?.isTruncated == true)
    }

    @Test func everyErrorWithMessage() throws {
        let errors: [(String, OptionReplyType)] = [
            ("80000001", .errUnsup), ("80000002", .errPolicy), ("80000003", .errInvalid),
            ("80000004", .errPlatform), ("80000005", .errTLSReqd), ("80000006", .errUnknown),
            ("80000007", .errShutdown), ("80000008", .errBlockSizeReqd), ("80000009", .errTooBig),
            ("8000000a", .errExtHeaderReqd),
        ]
        for (typeField, type) in errors {
            try check(hex(
                "0003e889045565a9",  // option reply magic
                "00000007",          // option: GO
                typeField,           // NBD_REP_ERR_*
                "00000007",          // data length 7
                "6e6f2077617921"     // message "no way!"
            ), option: .go, type: type, data: .error(message: "no way!"))
        }
        // The message is optional.
        try check(hex(
            "0003e889045565a9",  // option reply magic
            "00000005",          // option: STARTTLS
            "80000002",          // NBD_REP_ERR_POLICY
            "00000000"           // data length 0: no message
        ), option: .startTLS, type: .errPolicy, data: .error(message: ""))
    }

    @Test func unknownErrorType() throws {
        try check(hex(
            "0003e889045565a9",  // option reply magic
            "00000009",          // option: LIST_META_CONTEXT
            "8000000b",          // reply type 2^31 + 11: unknown, but an error
            "00000002",          // data length 2
            "6e6f"               // message "no"
        ), option: .listMetaContext, type: .unknown(0x8000_000b), data: .error(message: "no"))
    }

    @Test func unknownNonErrorType() throws {
        // Only the length of an unknown reply type is kept; the writer emits zeroes.
        try check(hex(
            "0003e889045565a9",  // option reply magic
            "0000000b",          // option: EXTENDED_HEADERS
            "00000005",          // reply type 5: unknown
            "00000003",          // data length 3
            "000000"             // data
        ), option: .extendedHeaders, type: .unknown(5), data: .unknown(length: 3))
    }
}
