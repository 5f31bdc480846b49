import NBDConversation
import NBDProtocol
import NIOCore
import Testing

struct ScenarioTests {
    @Test func oldstyleGreetingStartsTransmission() {
        var c = ConversationBuilder()
        // Spec layout: NBDMAGIC, cliserv_magic, size u64, flags u32 (gflags u16 + eflags u16), 124 zeroes.
        c.server {
            var greeting = hexBytes("4e42444d41474943 0000420281861253 0000000000100000 0000 0003")
            $0.writeBuffer(&greeting)
            $0.writeRepeatingByte(0, count: 124)
        }
        c.request(.read, cookie: 1, offset: 0, length: 512)
        c.simpleReply(cookie: 1, data: Array(repeating: 7, count: 512))
        let ev = decode(c.transcript)
        let started = ev.compactMap { if case .transmissionStarted(let i) = $0.kind { return i } else { return nil } }
        #expect(started.count == 1)
        #expect(started.first?.style == .oldstyle)
        #expect(started.first?.size == 0x100000)
        #expect(started.first?.flags == [.hasFlags, .readOnly])
        #expect(ev.completed.map(\.dataBytes) == [512])
        #expect(ev.violations.isEmpty)
    }

    @Test(arguments: [true, false])
    func exportNameReplyWithAndWithoutZeroes(_ noZeroes: Bool) {
        var c = ConversationBuilder()
        c.fixedNewstyle(noZeroes: noZeroes)
        c.option(.exportName) { $0.writeString("disk") }
        c.server { ExportNameReply(size: 4096, flags: [.hasFlags, .sendFlush], zeroesOmitted: noZeroes).write(to: &$0) }
        c.request(.flush, cookie: 9)
        c.simpleReply(cookie: 9)
        let ev = decode(c.transcript)
        let reply = ev.compactMap { if case .exportNameReply(let r) = $0.kind { return r } else { return nil } }
        #expect(reply == [ExportNameReply(size: 4096, flags: [.hasFlags, .sendFlush], zeroesOmitted: noZeroes)])
        #expect(ev.completed.count == 1)
        #expect(ev.violations.isEmpty)
    }

    @Test func plainNewstyleAllowsOnlyExportName() {
        var c = ConversationBuilder()
        c.server { ServerGreeting.newstyle([]).write(to: &$0) }
        c.client { $0.writeInteger(UInt32(0)) }
        c.option(.list)
        let ev = decode(c.transcript)
        #expect(ev.violations.map(\.code).contains(.optionNotAllowed))
    }

    @Test func listInfoAbortAndUnknownOption() {
        var c = ConversationBuilder()
        c.fixedNewstyle()
        c.option(.unknown(42)) { $0.writeBytes([1, 2, 3]) }
        c.reply(.unknown(42), .errUnsup, .error(message: "what?"))
        c.option(.list)
        c.reply(.list, .server, .server(name: "a", description: "first"))
        c.reply(.list, .server, .server(name: "b", description: ""))
        c.reply(.list, .ack)
        c.option(.info) { InfoRequest(exportName: "a", requests: [.name, .description]).write(to: &$0) }
        c.reply(.info, .info, .info(.name("a")))
        c.reply(.info, .info, .info(.description("first")))
        c.reply(.info, .info, .info(.blockSize(minimum: 1, preferred: 4096, maximum: 1 << 25)))
        c.reply(.info, .info, .info(.export(size: 1 << 20, flags: [.hasFlags])))
        c.reply(.info, .ack)
        c.option(.abort)
        c.reply(.abort, .ack)
        let ev = decode(c.transcript)
        #expect(ev.violations.isEmpty)
        let replies = ev.compactMap { if case .optionReply(let h, _, let final) = $0.kind { return "\(h.type.name)\(final ? "!" : "")" } else { return nil } }
        #expect(replies == ["ERR_UNSUP!", "SERVER", "SERVER", "ACK!", "INFO", "INFO", "INFO", "INFO", "ACK!", "ACK!"])
        #expect(!ev.contains { if case .transmissionStarted = $0.kind { return true } else { return false } })
    }

    @Test func startTLSMakesTheRestOpaque() {
        var c = ConversationBuilder()
        c.fixedNewstyle()
        c.option(.startTLS)
        c.reply(.startTLS, .ack)
        c.client { $0.writeBytes([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]) }   // a TLS ClientHello record, say
        c.server { $0.writeBytes([0x16, 0x03, 0x03, 0x00, 0x02, 9, 9]) }
        let ev = decode(c.transcript)
        #expect(ev.violations.isEmpty)
        #expect(ev.contains { $0.kind == .tlsStarted })
        let opaque = ev.compactMap { if case .opaque(let s) = $0.kind { return s.length } else { return nil } }
        #expect(opaque == [10, 7])
    }

    /// Bytes a proxy that terminated TLS relays (nbdtap's own `--tls`, and its `--pcap`):
    /// after STARTTLS's ACK the options come in plaintext and decode as any others, in any
    /// chunking (one byte at a time included).
    @Test(arguments: [1, 3, 8, 1000])
    func plaintextAfterStartTLSIsDecoded(_ chunk: Int) {
        var c = ConversationBuilder()
        c.fixedNewstyle()
        c.option(.startTLS)
        c.reply(.startTLS, .ack)
        c.option(.structuredReply)
        c.reply(.structuredReply, .ack)
        c.option(.go) { InfoRequest(exportName: "", requests: []).write(to: &$0) }
        c.reply(.go, .info, .info(.export(size: 1 << 20, flags: [.hasFlags])))
        c.reply(.go, .ack)
        c.request(.read, cookie: 1, offset: 0, length: 512)
        c.chunk(cookie: 1, .offsetHole(offset: 0, length: 512), type: .offsetHole, done: true)
        let ev = decode(c.transcript.records) { _, n in Array(stride(from: chunk, to: n, by: chunk)) }
        #expect(ev.violations.isEmpty)
        #expect(ev.contains { $0.kind == .tlsStarted })
        #expect(!ev.contains { if case .opaque = $0.kind { return true } else { return false } })
        #expect(ev.completed.map(\.request.command) == [.read])
    }

    @Test func simpleReadErrorCarriesNoData() {
        var c = ConversationBuilder()
        c.negotiate(structured: false)
        c.request(.read, cookie: 1, offset: 0, length: 4096)
        c.request(.read, cookie: 2, offset: 0, length: 512)
        c.simpleReply(cookie: 1, error: .eio)
        c.simpleReply(cookie: 2, data: Array(repeating: 1, count: 512))
        let ev = decode(c.transcript)
        #expect(ev.violations.isEmpty)
        #expect(ev.completed.map(\.error) == [.eio, .ok])
        #expect(ev.completed.map(\.dataBytes) == [0, 512])
    }

    @Test func structuredChunksInterleaveAcrossCookies() {
        var c = ConversationBuilder()
        c.negotiate()
        c.request(.read, cookie: 1, offset: 0, length: 1024)
        c.request(.read, cookie: 2, offset: 4096, length: 1024)
        c.chunk(cookie: 2, .offsetData(offset: 4096, dataLength: 512), type: .offsetData, done: false, data: Array(repeating: 2, count: 512))
        c.chunk(cookie: 1, .offsetHole(offset: 0, length: 512), type: .offsetHole, done: false)
        c.chunk(cookie: 2, .offsetHole(offset: 4608, length: 512), type: .offsetHole, done: true)
        c.chunk(cookie: 1, .offsetData(offset: 512, dataLength: 512), type: .offsetData, done: false, data: Array(repeating: 1, count: 512))
        c.chunk(cookie: 1, .none, type: .none, done: true)
        c.request(.blockStatus, cookie: 3, offset: 0, length: 1 << 20, flags: .reqOne)
        c.chunk(cookie: 3, .blockStatus(contextID: 1, descriptors: [BlockDescriptor(length: 65536, status: 3)]), type: .blockStatus, done: true)
        let ev = decode(c.transcript)
        #expect(ev.violations.isEmpty)
        let done = ev.completed
        #expect(done.map(\.id) == [2, 1, 3])
        #expect(done.map(\.dataBytes) == [512, 512, 0])
        #expect(done.map(\.holeBytes) == [512, 512, 0])
        #expect(done.last?.extents.first?.contextName == "base:allocation")
        #expect(done.last?.extents.first?.descriptors == [BlockDescriptor(length: 65536, status: 3)])
    }

    @Test func extendedHeaders() {
        var c = ConversationBuilder()
        c.negotiate(flags: TransmissionFlags(rawValue: 0x1ded), extended: true)
        c.request(.write, cookie: 1, offset: 0, length: 8, flags: .payloadLen, extended: true, payload: Array(repeating: 5, count: 8))
        c.chunk(cookie: 1, .none, type: .none, done: true, extended: true)
        c.request(.blockStatus, cookie: 2, offset: 0, length: 1 << 33, extended: true)
        c.chunk(cookie: 2, .blockStatusExt(contextID: 1, descriptors: [BlockDescriptor(length: 1 << 33, status: 0)]), type: .blockStatusExt, done: true, extended: true)
        c.request(.writeZeroes, cookie: 3, offset: 0, length: 4096, flags: .fastZero, extended: true)
        c.chunk(cookie: 3, .error(error: .enotsup, message: "slow"), type: .error, done: true, extended: true)
        let ev = decode(c.transcript)
        #expect(ev.violations.map(\.reason) == ["NBD_CMD_BLOCK_STATUS offset 0x0 length 0x200000000 goes past the export size 0x100000"])
        #expect(ev.requests.map(\.header.extended) == [true, true, true])
        #expect(ev.completed.map(\.error) == [.ok, .ok, .enotsup])
        #expect(ev.completed[2].errorMessage == "slow")
        #expect(ev.completed[1].extents.first?.descriptors.first?.length == 1 << 33)
    }

    @Test func discHasNoReplyAndUnknownCommandsContinue() {
        var c = ConversationBuilder()
        c.negotiate()
        c.request(.unknown(77), cookie: 1)
        c.chunk(cookie: 1, .error(error: .einval, message: ""), type: .error, done: true)
        c.request(.flush, cookie: 2)
        c.simpleReply(cookie: 2)
        c.request(.disc, cookie: 3)
        let ev = decode(c.transcript)
        #expect(ev.violations.map(\.code) == [.commandNotAdvertised])
        #expect(ev.requests.map(\.header.command) == [.unknown(77), .flush, .disc])
        #expect(ev.completed.map(\.request.command) == [.unknown(77), .flush])
    }

    @Test func unknownChunkTypes() {
        var c = ConversationBuilder()
        c.negotiate()
        c.request(.read, cookie: 1, offset: 0, length: 512)
        c.chunk(cookie: 1, .unknown(length: 3), type: .unknown(99), done: false, data: [1, 2, 3])
        c.chunk(cookie: 1, .error(error: .eio, message: "x"), type: .unknown(0x8000 | 77), done: true)
        c.request(.flush, cookie: 2)
        c.simpleReply(cookie: 2)
        let ev = decode(c.transcript)
        #expect(ev.violations.map(\.code) == [.unknownChunkType])
        #expect(ev.completed.map(\.error) == [.eio, .ok])
    }

    @Test func violations() {
        var c = ConversationBuilder()
        // Export without FAST_ZERO, TRIM or CACHE: HAS_FLAGS|FLUSH|FUA|WRITE_ZEROES.
        c.negotiate(size: 65536, flags: [.hasFlags, .sendFlush, .sendFUA, .sendWriteZeroes], structured: false)
        c.request(.writeZeroes, cookie: 1, offset: 0, length: 512, flags: .fastZero)
        c.simpleReply(cookie: 1, error: .einval)
        c.request(.trim, cookie: 2, offset: 0, length: 512)
        c.simpleReply(cookie: 2, error: .einval)
        c.request(.read, cookie: 3, offset: 65536, length: 512)
        c.request(.read, cookie: 3, offset: 0, length: 512)
        c.simpleReply(cookie: 3, error: .einval)
        c.simpleReply(cookie: 3, data: Array(repeating: 0, count: 512))
        c.simpleReply(cookie: 99, error: .eio)
        let ev = decode(c.transcript)
        #expect(ev.violations.map(\.code) == [.flagNotAdvertised, .commandNotAdvertised, .beyondExportSize, .duplicateCookie, .unknownCookie])
        #expect(ev.violations.first?.reason == "FAST_ZERO sent though the export did not advertise SEND_FAST_ZERO")
        #expect(ev.completed.map(\.id) == [1, 2, 3, 4])
        #expect(ev.violations.allSatisfy { !$0.fatal })
    }

    @Test func optionBeforeFinalReply() {
        var c = ConversationBuilder()
        c.fixedNewstyle()
        c.option(.structuredReply)
        c.option(.list)
        c.reply(.structuredReply, .ack)
        c.reply(.list, .ack)
        let ev = decode(c.transcript)
        #expect(ev.violations.map(\.code) == [.optionBeforeReply])
        #expect(ev.compactMap { if case .option(let h, _) = $0.kind { return h.option } else { return nil } } == [NBDOption.structuredReply, NBDOption.list])
    }

    @Test func badMagicIsFatalForThatDirectionOnly() {
        var c = ConversationBuilder()
        c.negotiate()
        c.request(.flush, cookie: 1)
        c.server { $0.writeBytes([0xde, 0xad, 0xbe, 0xef] + Array(repeating: 0, count: 30)) }
        c.request(.flush, cookie: 2)
        let ev = decode(c.transcript)
        let fatal = ev.violations.filter(\.fatal)
        #expect(fatal.map(\.code) == [.badMagic])
        #expect(fatal.first?.reason == "reply: bad magic 0xdeadbeef")
        #expect(ev.requests.count == 2)
        // Both flushes were never answered: reported abandoned when the server side ends.
        #expect(ev.completed.map(\.outcome) == [.abandoned, .abandoned])
    }

    @Test func truncatedStreamIsReported() {
        var c = ConversationBuilder()
        c.negotiate()
        c.request(.write, cookie: 1, offset: 0, length: 4096, payload: Array(repeating: 1, count: 100))
        let ev = decode(c.transcript)
        #expect(ev.violations.map(\.code) == [.truncated])
        #expect(ev.completed.map(\.outcome) == [.abandoned])
    }

    @Test func hugeOptionIsRefusedWithoutBuffering() {
        var c = ConversationBuilder()
        c.fixedNewstyle()
        c.client { OptionHeader(option: .list, dataLength: 0xffff_ffff).write(to: &$0) }
        let ev = decode(c.transcript)
        #expect(ev.violations.map(\.code) == [.tooLarge])
        #expect(ev.violations.first?.fatal == true)
    }
}
