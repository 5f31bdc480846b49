import FuzzSupport
import NBDConversation
import NBDReport

/// The conversation decoder, its log (both formats) and statistics, on two streams in any
/// chunking; flags bit 0 starts mid-session, bit 1 picks the JSON log.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Chunker(UnsafeRawBufferPointer(start: data, count: size))
    var tap = ConversationTap(connection: 1, logFormat: input.flags & 2 != 0 ? .json : .nbdkit, midSession: input.flags & 1 != 0)
    var text: [UInt8] = []
    var time: UInt64 = 1
    for r in input.records {
        tap.feed(r.toClient ? .serverToClient : .clientToServer, r.bytes, at: time, logText: &text)
        time += 1000
        if text.count > 1 << 20 { text.removeAll(keepingCapacity: true) }
    }
    tap.close(at: time, logText: &text)
    _ = StatsFormatter.table(tap.stats)
    return 0
}
