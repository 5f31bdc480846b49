import NBDProtocol
import Testing

/// Every constant of the reference, checked raw value -> case -> raw value and name.
@Suite struct ConstantsTests {
    @Test func magics() {
        #expect(NBDMagic.initPasswd == 0x4e42_444d_4147_4943)
        #expect(NBDMagic.cliservMagic == 0x0042_0281_8612_53)
        #expect(NBDMagic.iHaveOpt == 0x4948_4156_454f_5054)
        #expect(NBDMagic.optionReply == 0x0003_e889_0455_65a9)
        #expect(NBDMagic.request == 0x2560_9513)
        #expect(NBDMagic.simpleReply == 0x6744_6698)
        #expect(NBDMagic.structuredReply == 0x668e_33ef)
        #expect(NBDMagic.extendedRequest == 0x21e4_1c71)
        #expect(NBDMagic.extendedReply == 0x6e8a_278c)
        #expect(NBDMagic.historicRequest == 0x1256_0953)
        #expect(NBDMagic.historicReply == 0x9674_4668)
        #expect(NBDMagic.traceLog == 0x2560_9514)
        // The two 8-byte magics spell ASCII words.
        #expect(hex("4e42444d41474943").readableBytesView.elementsEqual("NBDMAGIC".utf8))
        #expect(hex("49484156454f5054").readableBytesView.elementsEqual("IHAVEOPT".utf8))
        #expect(hex("4e42444d41474943").getInteger(at: 0, as: UInt64.self) == NBDMagic.initPasswd)
        #expect(hex("49484156454f5054").getInteger(at: 0, as: UInt64.self) == NBDMagic.iHaveOpt)
    }

    @Test func options() {
        let table: [(UInt32, NBDOption, String)] = [
            (1, .exportName, "EXPORT_NAME"), (2, .abort, "ABORT"), (3, .list, "LIST"),
            (4, .peekExport, "PEEK_EXPORT"), (5, .startTLS, "STARTTLS"), (6, .info, "INFO"),
            (7, .go, "GO"), (8, .structuredReply, "STRUCTURED_REPLY"),
            (9, .listMetaContext, "LIST_META_CONTEXT"), (10, .setMetaContext, "SET_META_CONTEXT"),
            (11, .extendedHeaders, "EXTENDED_HEADERS"),
        ]
        for (raw, value, name) in table {
            #expect(NBDOption(rawValue: raw) == value)
            #expect(value.rawValue == raw)
            #expect(value.name == name)
        }
        for raw: UInt32 in [0, 12, 0x8000_0001, .max] {
            let o = NBDOption(rawValue: raw)
            #expect(o == .unknown(raw))
            #expect(o.rawValue == raw)
            #expect(o.name.contains(String(raw)))
        }
    }

    @Test func optionReplyTypes() {
        let e: UInt32 = 1 << 31
        #expect(OptionReplyType.errorBit == 0x8000_0000)
        let table: [(UInt32, OptionReplyType, String)] = [
            (1, .ack, "ACK"), (2, .server, "SERVER"), (3, .info, "INFO"), (4, .metaContext, "META_CONTEXT"),
            (e + 1, .errUnsup, "ERR_UNSUP"), (e + 2, .errPolicy, "ERR_POLICY"),
            (e + 3, .errInvalid, "ERR_INVALID"), (e + 4, .errPlatform, "ERR_PLATFORM"),
            (e + 5, .errTLSReqd, "ERR_TLS_REQD"), (e + 6, .errUnknown, "ERR_UNKNOWN"),
            (e + 7, .errShutdown, "ERR_SHUTDOWN"), (e + 8, .errBlockSizeReqd, "ERR_BLOCK_SIZE_REQD"),
            (e + 9, .errTooBig, "ERR_TOO_BIG"), (e + 10, .errExtHeaderReqd, "ERR_EXT_HEADER_REQD"),
        ]
        for (raw, value, name) in table {
            #expect(OptionReplyType(rawValue: raw) == value)
            #expect(value.rawValue == raw)
            #expect(value.name == name)
            #expect(value.isError == (raw >= e))
        }
        // Unknown non-error reply types.
        for raw: UInt32 in [0, 5, 0x7fff_ffff] {
            let t = OptionReplyType(rawValue: raw)
            #expect(t == .unknown(raw))
            #expect(t.rawValue == raw)
            #expect(!t.isError)
            #expect(t.name.contains(String(raw)))
        }
        // Unknown error types stay errors; the name carries the number below bit 31.
        for raw: UInt32 in [e, e + 11, .max] {
            let t = OptionReplyType(rawValue: raw)
            #expect(t == .unknown(raw))
            #expect(t.rawValue == raw)
            #expect(t.isError)
            #expect(t.name.hasPrefix("ERR_"))
            #expect(t.name.contains(String(raw & ~e)))
        }
    }

    @Test func infoTypes() {
        let table: [(UInt16, InfoType, String)] = [
            (0, .export, "EXPORT"), (1, .name, "NAME"), (2, .description, "DESCRIPTION"), (3, .blockSize, "BLOCK_SIZE"),
        ]
        for (raw, value, name) in table {
            #expect(InfoType(rawValue: raw) == value)
            #expect(value.rawValue == raw)
            #expect(value.name == name)
        }
        for raw: UInt16 in [4, 0x1234, .max] {
            let t = InfoType(rawValue: raw)
            #expect(t == .unknown(raw))
            #expect(t.rawValue == raw)
            #expect(t.name.contains(String(raw)))
        }
    }

    @Test func commands() {
        let table: [(UInt16, NBDCommand, String)] = [
            (0, .read, "READ"), (1, .write, "WRITE"), (2, .disc, "DISC"), (3, .flush, "FLUSH"),
            (4, .trim, "TRIM"), (5, .cache, "CACHE"), (6, .writeZeroes, "WRITE_ZEROES"),
            (7, .blockStatus, "BLOCK_STATUS"), (8, .resize, "RESIZE"),
        ]
        for (raw, value, name) in table {
            #expect(NBDCommand(rawValue: raw) == value)
            #expect(value.rawValue == raw)
            #expect(value.name == name)
        }
        for raw: UInt16 in [9, 0x100, .max] {
            let c = NBDCommand(rawValue: raw)
            #expect(c == .unknown(raw))
            #expect(c.rawValue == raw)
            #expect(c.name.contains(String(raw)))
        }
    }

    @Test func commandRequirements() {
        // The transmission flag that exposes each command (reference, request types table).
        #expect(NBDCommand.flush.requiredTransmissionFlag == .sendFlush)
        #expect(NBDCommand.trim.requiredTransmissionFlag == .sendTrim)
        #expect(NBDCommand.cache.requiredTransmissionFlag == .sendCache)
        #expect(NBDCommand.writeZeroes.requiredTransmissionFlag == .sendWriteZeroes)
        #expect(NBDCommand.resize.requiredTransmissionFlag == .sendResize)
        for c: NBDCommand in [.read, .write, .disc, .blockStatus, .unknown(9)] {
            #expect(c.requiredTransmissionFlag == nil)
        }
        // Commands that modify the export (fail with EPERM on READ_ONLY).
        for c: NBDCommand in [.write, .trim, .writeZeroes, .resize] { #expect(c.isWrite) }
        for c: NBDCommand in [.read, .disc, .flush, .cache, .blockStatus, .unknown(9)] { #expect(!c.isWrite) }
    }

    @Test func chunkTypes() {
        #expect(ReplyChunkType.errorBit == 0x8000)
        let table: [(UInt16, ReplyChunkType, String, Bool)] = [
            (0, .none, "NONE", false), (1, .offsetData, "OFFSET_DATA", false),
            (2, .offsetHole, "OFFSET_HOLE", false), (5, .blockStatus, "BLOCK_STATUS", false),
            (6, .blockStatusExt, "BLOCK_STATUS_EXT", false), (32769, .error, "ERROR", true),
            (32770, .errorOffset, "ERROR_OFFSET", true),
        ]
        for (raw, value, name, isError) in table {
            #expect(ReplyChunkType(rawValue: raw) == value)
            #expect(value.rawValue == raw)
            #expect(value.name == name)
            #expect(value.isError == isError)
        }
        // 3 and 4 are unassigned (nbd-server's nbd.h wrongly calls 3 BLOCK_STATUS).
        for raw: UInt16 in [3, 4, 7, 0x7fff, 0x8000, 32771, .max] {
            let t = ReplyChunkType(rawValue: raw)
            #expect(t == .unknown(raw))
            #expect(t.rawValue == raw)
            #expect(t.isError == (raw >= 0x8000))
            #expect(t.name.contains(String(raw)))
        }
    }

    @Test func errorValues() {
        let table: [(UInt32, ErrorValue, String)] = [
            (0, .ok, "OK"), (1, .eperm, "EPERM"), (5, .eio, "EIO"), (12, .enomem, "ENOMEM"),
            (22, .einval, "EINVAL"), (28, .enospc, "ENOSPC"), (75, .eoverflow, "EOVERFLOW"),
            (95, .enotsup, "ENOTSUP"), (108, .eshutdown, "ESHUTDOWN"),
        ]
        for (raw, value, name) in table {
            #expect(ErrorValue(rawValue: raw) == value)
            #expect(value.rawValue == raw)
            #expect(value.name == name)
        }
        for raw: UInt32 in [2, 13, 109, .max] {
            let v = ErrorValue(rawValue: raw)
            #expect(v == .unknown(raw))
            #expect(v.rawValue == raw)
            #expect(v.name.contains(String(raw)))
        }
    }

    @Test func transmissionFlags() {
        let table: [(Int, TransmissionFlags, String)] = [
            (0, .hasFlags, "HAS_FLAGS"), (1, .readOnly, "READ_ONLY"), (2, .sendFlush, "SEND_FLUSH"),
            (3, .sendFUA, "SEND_FUA"), (4, .rotational, "ROTATIONAL"), (5, .sendTrim, "SEND_TRIM"),
            (6, .sendWriteZeroes, "SEND_WRITE_ZEROES"), (7, .sendDF, "SEND_DF"),
            (8, .canMultiConn, "CAN_MULTI_CONN"), (9, .sendResize, "SEND_RESIZE"),
            (10, .sendCache, "SEND_CACHE"), (11, .sendFastZero, "SEND_FAST_ZERO"),
            (12, .blockStatusPayload, "BLOCK_STATUS_PAYLOAD"),
        ]
        for (bit, flag, name) in table {
            #expect(flag.rawValue == 1 << bit)
            #expect(TransmissionFlags(rawValue: 1 << bit) == flag)
            #expect(flag.names == [name])
        }
        #expect(TransmissionFlags.all.map(\.1) == table.map(\.2))
        #expect(TransmissionFlags.all.map(\.0.rawValue) == table.map(\.1.rawValue))
        #expect(TransmissionFlags.known.rawValue == 0x1fff)
        #expect(TransmissionFlags().names == [])
        // nbdkit memory plugin's eflags (reference worked decode).
        #expect(TransmissionFlags(rawValue: 0x0ded).names == [
            "HAS_FLAGS", "SEND_FLUSH", "SEND_FUA", "SEND_TRIM", "SEND_WRITE_ZEROES", "SEND_DF",
            "CAN_MULTI_CONN", "SEND_CACHE", "SEND_FAST_ZERO",
        ])
        for bit in 13...15 {
            let f = TransmissionFlags(rawValue: 1 << bit)
            #expect(f.names == ["BIT_\(bit)"])
            #expect(f.rawValue == 1 << bit)
        }
        #expect(TransmissionFlags(rawValue: 0xa001).names == ["HAS_FLAGS", "BIT_13", "BIT_15"])
    }

    @Test func commandFlags() {
        let table: [(Int, CommandFlags, String)] = [
            (0, .fua, "FUA"), (1, .noHole, "NO_HOLE"), (2, .df, "DF"), (3, .reqOne, "REQ_ONE"),
            (4, .fastZero, "FAST_ZERO"), (5, .payloadLen, "PAYLOAD_LEN"),
        ]
        for (bit, flag, name) in table {
            #expect(flag.rawValue == 1 << bit)
            #expect(CommandFlags(rawValue: 1 << bit) == flag)
            #expect(flag.names == [name])
        }
        #expect(CommandFlags.all.map(\.1) == table.map(\.2))
        #expect(CommandFlags.known.rawValue == 0x3f)
        #expect(CommandFlags().names == [])
        for bit in 6...15 {
            #expect(CommandFlags(rawValue: 1 << bit).names == ["BIT_\(bit)"])
        }
        #expect(CommandFlags(rawValue: 0x0043).names == ["FUA", "NO_HOLE", "BIT_6"])
    }

    @Test func handshakeAndClientFlags() {
        #expect(HandshakeFlags.fixedNewstyle.rawValue == 1)
        #expect(HandshakeFlags.noZeroes.rawValue == 2)
        #expect(HandshakeFlags(rawValue: 3).names == ["FIXED_NEWSTYLE", "NO_ZEROES"])
        #expect(HandshakeFlags(rawValue: 0).names == [])
        #expect(HandshakeFlags(rawValue: 0x8001).names == ["FIXED_NEWSTYLE", "BIT_15"])
        #expect(HandshakeFlags.known.rawValue == 3)

        #expect(ClientFlags.fixedNewstyle.rawValue == 1)
        #expect(ClientFlags.noZeroes.rawValue == 2)
        #expect(ClientFlags(rawValue: 3).names == ["C_FIXED_NEWSTYLE", "C_NO_ZEROES"])
        #expect(ClientFlags(rawValue: 0x8000_0004).names == ["BIT_2", "BIT_31"])
        #expect(ClientFlags.known.rawValue == 3)
    }

    @Test func replyFlagsAndBaseAllocation() {
        #expect(ReplyFlags.done.rawValue == 1)
        #expect(ReplyFlags.done.names == ["DONE"])
        #expect(ReplyFlags(rawValue: 0).names == [])
        #expect(ReplyFlags(rawValue: 0x0005).names == ["DONE", "BIT_2"])
        #expect(BaseAllocation.hole == 1)
        #expect(BaseAllocation.zero == 2)
    }
}
