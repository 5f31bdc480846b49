import FuzzSupport
import NBDConversation
import NBDProtocol
import NBDReplay
import NBDReport
import NIOCore

/// The replay's decision code on a recorded connection: the workload extractor (WRITE
/// data copied out, replies reduced to outcomes) on two streams in any chunking, then each
/// item through what the replayer does with it: the negotiation plan and its first steps,
/// the framing of each request under compact and extended headers (with and without a
/// fill pattern), the comparison of each outcome. Flags bit 0 starts mid-session, bit 1
/// declares a gap before every fourth record.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Chunker(UnsafeRawBufferPointer(start: data, count: size))
    let mid = input.flags & 1 != 0
    var tap = ConversationTap(connection: 1, logFormat: nil, midSession: mid)
    var x = WorkloadExtractor(connection: 1, midSession: mid)
    var text: [UInt8] = []
    var seen: [StreamDirection: UInt64] = [:]
    var time: UInt64 = 1
    var last: ReplyOutcome?
    func drain(_ x: inout WorkloadExtractor) {
        for item in x.items {
            switch item {
            case .negotiation(let n):
                var neg = ReplayNegotiator(recorded: n, exportName: n.known ? nil : "e")
                _ = neg.handle(.serverGreeting(.newstyle([.fixedNewstyle, .noZeroes])))
                for o in neg.plan {
                    _ = neg.handle(.optionReply(OptionReplyHeader(option: o.option, type: .errUnsup, dataLength: 0), .error(message: ""), final: true))
                }
            case .request(let r):
                for info in [TransmissionInfo(), TransmissionInfo(structuredReplies: true, metaContexts: [1: "base:allocation"]),
                             TransmissionInfo(flags: [.blockStatusPayload], structuredReplies: true, extendedHeaders: true, metaContexts: [7: "base:allocation"])] {
                    _ = RequestEncoder.encode(r, cookie: r.id, info: info, fill: nil)
                    _ = RequestEncoder.encode(r, cookie: r.id, info: info, fill: [0xab, 0xcd, 0xef])
                }
            case .outcome(_, let o):
                _ = OutcomeComparison.compare(recorded: o, replayed: last ?? o, effectLength: 1 << 20)
                _ = OutcomeComparison.describe(o)
                last = o
            case .skipped, .end:
                break
            }
        }
        x.items.removeAll()
    }
    for (i, r) in input.records.enumerated() {
        let d: StreamDirection = r.toClient ? .serverToClient : .clientToServer
        if input.flags & 2 != 0 && i % 4 == 3 {
            var events: [ConversationEvent] = []
            tap.decoder.gap(d, length: UInt64(r.bytes.readableBytes), at: time, into: &events)
            x.gap(d, at: seen[d, default: 0], length: UInt64(r.bytes.readableBytes), events)
            seen[d, default: 0] += UInt64(r.bytes.readableBytes)
        } else {
            tap.feed(d, r.bytes, at: time, logText: &text)
            x.fed(d, at: seen[d, default: 0], r.bytes, tap.events)
            seen[d, default: 0] += UInt64(r.bytes.readableBytes)
        }
        drain(&x)
        time += 1000
    }
    for d in [StreamDirection.clientToServer, .serverToClient] {
        tap.finish(d, at: time, logText: &text)
        x.ended(tap.events)
    }
    x.closed(at: time)
    drain(&x)
    return 0
}
