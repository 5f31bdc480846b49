import FuzzSupport
import NBDConversation

/// The `.nbdt` transcript reader, and the decoder over what it read.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let t = try? Transcript(parsing: buffer(UnsafeRawBufferPointer(start: data, count: size))) else { return 0 }
    var decoder = ConversationDecoder()
    var events: [ConversationEvent] = []
    for r in t.records { decoder.feed(r.direction, r.bytes, at: r.time, into: &events); events.removeAll(keepingCapacity: true) }
    decoder.finish(.clientToServer, at: 0, into: &events)
    decoder.finish(.serverToClient, at: 0, into: &events)
    return 0
}
