import NBDProtocol
import NIOCore
import Testing

/// Client options: the 16-byte header for every option and the INFO/GO and
/// LIST/SET_META_CONTEXT data layouts.
@Suite struct OptionTests {
    /// Splits one option message into header and data, checking the header's length.
    func parseOption(_ bytes: ByteBuffer) throws -> (OptionHeader, OptionData, ByteBuffer) {
        var b = bytes
        let header = try #require(try OptionHeader.read(from: &b))
        #expect(b.readableBytes == Int(header.dataLength))
        let data = b.readSlice(length: Int(header.dataLength))!
        return (header, try OptionData.parse(option: header.option, data: data), data)
    }

    /// Serializes header and data again. OptionData has no writer of its own: the
    /// structured kinds use theirs, opaque data travels as the raw bytes.
    func reserialize(_ header: OptionHeader, _ data: OptionData, raw: ByteBuffer) -> ByteBuffer {
        serialized { out in
            header.write(to: &out)
            switch data {
            case .exportName(let name): out.writeString(name)
            case .info(let r): r.write(to: &out)
            case .metaContext(let r): r.write(to: &out)
            case .opaque(let length):
                #expect(Int(length) == raw.readableBytes)
                out.writeImmutableBuffer(raw)
            }
        }
    }

    @Test func everyOption() throws {
        let cases: [(ByteBuffer, NBDOption, OptionData)] = [
            (hex("49484156454f5054",  // IHAVEOPT
                 "00000001",          // option: EXPORT_NAME
                 "00000004",          // data length
                 "6469736b"),         // export name "disk"
             .exportName, .exportName("disk")),
            (hex("49484156454f5054", "00000002", "00000000"),  // IHAVEOPT, ABORT, length 0
             .abort, .opaque(length: 0)),
            (hex("49484156454f5054", "00000003", "00000000"),  // IHAVEOPT, LIST, length 0
             .list, .opaque(length: 0)),
            (hex("49484156454f5054", "00000004", "00000000"),  // IHAVEOPT, PEEK_EXPORT, length 0
             .peekExport, .opaque(length: 0)),
            (hex("49484156454f5054", "00000005", "00000000"),  // IHAVEOPT, STARTTLS, length 0
             .startTLS, .opaque(length: 0)),
            (hex("49484156454f5054",  // IHAVEOPT
                 "00000006",          // option: INFO
                 "0000000e",          // data length 14
                 "00000004",          // export name length
                 "6469736b",          // "disk"
                 "0002",              // number of information requests
                 "0000", "0003"),     // NBD_INFO_EXPORT, NBD_INFO_BLOCK_SIZE
             .info, .info(InfoRequest(exportName: "disk", requests: [.export, .blockSize]))),
            (hex("49484156454f5054",  // IHAVEOPT
                 "00000007",          // option: GO
                 "00000006",          // data length 6
                 "00000000",          // export name length 0 (default export)
                 "0000"),             // no information requests
             .go, .info(InfoRequest(exportName: "", requests: []))),
            (hex("49484156454f5054", "00000008", "00000000"),  // IHAVEOPT, STRUCTURED_REPLY, length 0
             .structuredReply, .opaque(length: 0)),
            (hex("49484156454f5054",  // IHAVEOPT
                 "00000009",          // option: LIST_META_CONTEXT
                 "0000000c",          // data length 12
                 "00000004",          // export name length
                 "6469736b",          // "disk"
                 "00000000"),         // 0 queries: list all
             .listMetaContext, .metaContext(MetaContextRequest(exportName: "disk", queries: []))),
            (hex("49484156454f5054",  // IHAVEOPT
                 "0000000a",          // option: SET_META_CONTEXT
                 "0000001f",          // data length 31
                 "00000004",          // export name length
                 "6469736b",          // "disk"
                 "00000001",          // 1 query
                 "0000000f",          // query length 15
                 "626173653a616c6c6f636174696f6e"),  // "base:allocation"
             .setMetaContext, .metaContext(MetaContextRequest(exportName: "disk", queries: ["base:allocation"]))),
            (hex("49484156454f5054", "0000000b", "00000000"),  // IHAVEOPT, EXTENDED_HEADERS, length 0
             .extendedHeaders, .opaque(length: 0)),
            (hex("49484156454f5054",  // IHAVEOPT
                 "0000002a",          // option 42: unknown
                 "00000003",          // data length 3
                 "010203"),           // data
             .unknown(42), .opaque(length: 3)),
        ]
        for (bytes, option, data) in cases {
            let (header, parsed, raw) = try parseOption(bytes)
            #expect(header.option == option)
            #expect(header.dataLength == UInt32(bytes.readableBytes - OptionHeader.length))
            #expect(parsed == data)
            expectBytes(reserialize(header, parsed, raw: raw), bytes)
            // The header alone round-trips too.
            expectBytes(serialized { header.write(to: &$0) }, bytes.getSlice(at: bytes.readerIndex, length: 16)!)
        }
    }

    @Test func optionHeaderBadMagic() {
        var b = hex(
            "4e42444d41474943",  // NBDMAGIC where IHAVEOPT belongs
            "00000007",          // option: GO
            "00000000"           // data length
        )
        #expect(wireError { try OptionHeader.read(from: &b) }?.badMagicValue == NBDMagic.initPasswd)
    }

    @Test func exportNameIsUTF8() throws {
        let data = hex("636166c3a9")  // "café" in UTF-8
        #expect(try OptionData.parse(option: .exportName, data: data) == .exportName("café"))
        // Invalid UTF-8 is replaced, not dropped.
        #expect(try OptionData.parse(option: .exportName, data: hex("61ff62")) == .exportName("a\u{FFFD}b"))
    }

    @Test func infoRequestWithUnknownInfoType() throws {
        let bytes = hex(
            "00000000",  // export name length 0
            "0004",      // 4 information requests
            "0000",      // NBD_INFO_EXPORT
            "0001",      // NBD_INFO_NAME
            "0002",      // NBD_INFO_DESCRIPTION
            "00ff"       // info type 255: unknown, kept
        )
        let r = try InfoRequest.parse(bytes)
        #expect(r == InfoRequest(exportName: "", requests: [.export, .name, .description, .unknown(255)]))
        expectBytes(serialized { r.write(to: &$0) }, bytes)
    }

    @Test func infoRequestCountDisagreesWithData() {
        let bytes = hex(
            "00000001",  // export name length
            "61",        // "a"
            "0002",      // 2 requests announced
            "0000"       // but only one follows
        )
        #expect(wireError { try InfoRequest.parse(bytes) }?.isInconsistent == true)
    }

    @Test func infoRequestNameLongerThanData() {
        let bytes = hex(
            "00000010",  // export name length 16
            "6469736b",  // only 4 bytes follow
            "0000"       // count
        )
        #expect(wireError { try InfoRequest.parse(bytes) }?.isTruncated == true)
        #expect(wireError { try InfoRequest.parse(hex("000000")) }?.isTruncated == true)  // not even the length
        #expect(wireError { try InfoRequest.parse(hex("00000000", "00")) }?.isTruncated == true)  // half a count
    }

    @Test func metaContextSeveralQueries() throws {
        let bytes = hex(
            "00000004",                          // export name length
            "6469736b",                          // "disk"
            "00000003",                          // 3 queries
            "00000005", "626173653a",            // "base:"
            "0000000f", "626173653a616c6c6f636174696f6e",  // "base:allocation"
            "00000005", "71656d753a"             // "qemu:"
        )
        let r = try MetaContextRequest.parse(bytes)
        #expect(r == MetaContextRequest(exportName: "disk", queries: ["base:", "base:allocation", "qemu:"]))
        expectBytes(serialized { r.write(to: &$0) }, bytes)
        #expect(try OptionData.parse(option: .listMetaContext, data: bytes) == .metaContext(r))
    }

    @Test func metaContextZeroQueriesEmptyName() throws {
        let bytes = hex(
            "00000000",  // export name length 0
            "00000000"   // 0 queries
        )
        let r = try MetaContextRequest.parse(bytes)
        #expect(r == MetaContextRequest(exportName: "", queries: []))
        expectBytes(serialized { r.write(to: &$0) }, bytes)
    }

    @Test func metaContextHugeCountIsRefused() {
        // 2^32 - 1 queries announced in 8 bytes: must be refused before reserving anything.
        let bytes = hex(
            "00000000",  // export name length 0
            "ffffffff",  // query count
            "00000000"   // one empty query
        )
        #expect(wireError { try MetaContextRequest.parse(bytes) }?.isInconsistent == true)
    }

    @Test func metaContextCountLargerThanData() {
        let bytes = hex(
            "00000000",              // export name length 0
            "00000002",              // 2 queries announced
            "00000001", "61",        // query "a"
            "00000000"               // 4 bytes: fits the count check, then the second query
        )
        // Second query is present (empty), so that is valid...
        #expect((try? MetaContextRequest.parse(bytes)) == MetaContextRequest(exportName: "", queries: ["a", ""]))
        // ...but three announced with only those bytes is not.
        let three = hex("00000000", "00000003", "00000001", "61", "00000000")
        #expect(wireError { try MetaContextRequest.parse(three) }?.isInconsistent == true)
    }

    @Test func metaContextQueryLongerThanData() {
        let bytes = hex(
            "00000000",  // export name length 0
            "00000001",  // 1 query
            "00000009",  // query length 9
            "62617365"   // only 4 bytes
        )
        #expect(wireError { try MetaContextRequest.parse(bytes) }?.isTruncated == true)
    }

    @Test func metaContextTrailingBytes() {
        let bytes = hex(
            "00000000",  // export name length 0
            "00000000",  // 0 queries
            "0000"       // 2 stray bytes
        )
        #expect(wireError { try MetaContextRequest.parse(bytes) }?.isInconsistent == true)
    }
}
