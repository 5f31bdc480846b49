import NBDConversation
import NBDProtocol
import NIOCore
import Testing
@testable import NBDReplay

/// The replay asks what the recorded client asked and adapts as a real client would.
@Suite struct ReplayNegotiatorTests {
    func recorded(_ options: [(NBDOption, OptionData)]) -> RecordedNegotiation {
        var n = RecordedNegotiation()
        n.clientFlags = [.fixedNewstyle, .noZeroes]
        n.options = options.map { RecordedOption(header: OptionHeader(option: $0.0, dataLength: 0), data: $0.1) }
        return n
    }

    /// The options in a buffer, as the server reads them.
    func options(_ step: ReplayNegotiator.Step, skipFlags: Bool = false) throws -> [NBDOption] {
        guard case .send(var b) = step else { return [] }
        if skipFlags { b.moveReaderIndex(forwardBy: 4) }
        var out: [NBDOption] = []
        while let h = try OptionHeader.read(from: &b) {
            out.append(h.option)
            b.moveReaderIndex(forwardBy: Int(h.dataLength))
        }
        return out
    }

    func reply(_ o: NBDOption, _ t: OptionReplyType) -> ConversationEvent.Kind {
        .optionReply(OptionReplyHeader(option: o, type: t, dataLength: 0), t == .ack ? .ack : .error(message: ""), final: true)
    }

    @Test func extendedHeadersRefusedAsksForStructuredReplies() throws {
        let go = OptionData.info(InfoRequest(exportName: "", requests: []))
        var n = ReplayNegotiator(recorded: recorded([(.extendedHeaders, .opaque(length: 0)), (.go, go)]))
        let first = n.handle(.serverGreeting(.newstyle([.fixedNewstyle, .noZeroes])))
        guard case .send(let b) = first else { Issue.record("nothing sent"); return }
        #expect(b.getInteger(at: b.readerIndex, as: UInt32.self) == 3)  // both client flags
        #expect(try options(first, skipFlags: true) == [.extendedHeaders])
        #expect(try options(n.handle(reply(.extendedHeaders, .errUnsup))) == [.structuredReply])
        #expect(try options(n.handle(reply(.structuredReply, .ack))) == [.go])
        #expect(n.results.map(\.reply) == [.errUnsup, .ack, nil])
        #expect(n.results.map { $0.recorded == nil } == [false, true, false])
    }

    @Test func goUnsupportedFallsBackToExportName() throws {
        let go = OptionData.info(InfoRequest(exportName: "disk1", requests: [.blockSize]))
        var n = ReplayNegotiator(recorded: recorded([(.go, go)]), exportName: "other")
        #expect(try options(n.handle(.serverGreeting(.newstyle([.fixedNewstyle]))), skipFlags: true) == [.go])
        let step = n.handle(reply(.go, .errUnsup))
        guard case .send(var b) = step, let h = try OptionHeader.read(from: &b) else { Issue.record("nothing sent"); return }
        #expect(h.option == .exportName)
        #expect(b.readString(length: Int(h.dataLength)) == "other")
    }

    @Test func startTLSIsNotReplayed() throws {
        var n = ReplayNegotiator(recorded: recorded([(.startTLS, .opaque(length: 0)), (.structuredReply, .opaque(length: 0))]))
        #expect(n.notReplayed.count == 1)
        #expect(try options(n.handle(.serverGreeting(.newstyle([.fixedNewstyle, .noZeroes]))), skipFlags: true) == [.structuredReply])
    }
}
