import NBDConversation
import NBDProtocol
import NIOCore
import Testing
@testable import NBDReplay

/// The framing of a replayed request follows what the replay negotiated, which may not
/// be what the recording negotiated. Expected bytes are written out from the spec's
/// layouts (doc/proto.md, "Request message"; extended headers on its branch).
@Suite struct RequestEncoderTests {
    func request(_ command: NBDCommand, flags: CommandFlags = [], offset: UInt64 = 0x10000, length: UInt64 = 4,
                 extended: Bool = false, payload: [UInt8]? = nil, missing: [Range<UInt64>] = [], filter: [String]? = nil) -> RecordedRequest {
        var r = RecordedRequest(connection: 1, id: 1,
                                header: RequestHeader(flags: flags, command: command, cookie: 0xdead, offset: offset, length: length, extended: extended),
                                effectLength: length, contextFilter: filter, depth: 1, time: 0)
        r.payload = payload.map { ByteBuffer(bytes: $0) }
        r.missing = missing
        return r
    }

    func bytes(_ b: ByteBuffer?) -> [UInt8] { b.map { Array($0.readableBytesView) } ?? [] }

    @Test func compactWriteBecomesExtendedWithPayloadLen() throws {
        let r = request(.write, flags: .fua, payload: [1, 2, 3, 4])
        guard case .send(let h, let p) = RequestEncoder.encode(r, cookie: 7, info: TransmissionInfo(structuredReplies: true, extendedHeaders: true), fill: nil) else {
            Issue.record("not sent"); return
        }
        // magic 0x21e41c71, flags FUA|PAYLOAD_LEN (0x21), type 1, cookie 7, offset, 64-bit length 4.
        #expect(bytes(h) == [0x21, 0xe4, 0x1c, 0x71, 0x00, 0x21, 0x00, 0x01] + [0, 0, 0, 0, 0, 0, 0, 7]
            + [0, 0, 0, 0, 0, 1, 0, 0] + [0, 0, 0, 0, 0, 0, 0, 4])
        #expect(bytes(p) == [1, 2, 3, 4])
    }

    @Test func extendedReadBecomesCompact() {
        let r = request(.read, flags: .df, length: 0x2000, extended: true)
        guard case .send(let h, let p) = RequestEncoder.encode(r, cookie: 1, info: TransmissionInfo(structuredReplies: true), fill: nil) else {
            Issue.record("not sent"); return
        }
        // magic 0x25609513, flags DF (4), type 0, cookie 1, offset, 32-bit length.
        #expect(bytes(h) == [0x25, 0x60, 0x95, 0x13, 0x00, 0x04, 0x00, 0x00] + [0, 0, 0, 0, 0, 0, 0, 1]
            + [0, 0, 0, 0, 0, 1, 0, 0] + [0, 0, 0x20, 0])
        #expect(p == nil)
    }

    @Test func whatCannotBeFramedIsNotSent() {
        let big = request(.read, length: 1 << 33, extended: true)
        guard case .skip(let why) = RequestEncoder.encode(big, cookie: 1, info: TransmissionInfo(structuredReplies: true), fill: nil) else {
            Issue.record("an 8 GiB length sent in a compact header"); return
        }
        #expect(why.contains("compact"))
        guard case .skip = RequestEncoder.encode(request(.blockStatus), cookie: 1, info: TransmissionInfo(), fill: nil) else {
            Issue.record("BLOCK_STATUS sent without structured replies"); return
        }
    }

    @Test func missingWriteDataIsFilledOnlyWhenAsked() {
        let r = request(.write, payload: [9, 0, 0, 9], missing: [1..<3])
        guard case .skip = RequestEncoder.encode(r, cookie: 1, info: TransmissionInfo(), fill: nil) else {
            Issue.record("a write with unknown data sent"); return
        }
        guard case .send(_, let p) = RequestEncoder.encode(r, cookie: 1, info: TransmissionInfo(), fill: [0xab, 0xcd]) else {
            Issue.record("not sent"); return
        }
        // The pattern runs from the start of the data: position 1 is its second byte.
        #expect(bytes(p) == [9, 0xcd, 0xab, 9])
    }

    /// A BLOCK_STATUS payload's context ids are the replay's, found by name.
    @Test func blockStatusFilterUsesTheReplaysIds() {
        let r = request(.blockStatus, length: 0x10000, extended: true, filter: ["qemu:dirty-bitmap:b"])
        let info = TransmissionInfo(flags: [.hasFlags, .blockStatusPayload], structuredReplies: true, extendedHeaders: true,
                                    metaContexts: [1: "base:allocation", 5: "qemu:dirty-bitmap:b"])
        guard case .send(let h, let p) = RequestEncoder.encode(r, cookie: 1, info: info, fill: nil) else {
            Issue.record("not sent"); return
        }
        #expect(bytes(h)[4...5] == [0x00, 0x20])  // PAYLOAD_LEN
        #expect(bytes(h)[24...] == [0, 0, 0, 0, 0, 0, 0, 12])
        #expect(bytes(p) == [0, 0, 0, 0, 0, 1, 0, 0] + [0, 0, 0, 5])
    }
}
