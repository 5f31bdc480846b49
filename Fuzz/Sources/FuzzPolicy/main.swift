import FuzzSupport
import NBDConversation
import NBDEmulation
import NBDProtocol

/// The emulation policy chain on decoded messages: every handshake, option and request the
/// decoder finds in two arbitrary streams goes through the decisions of an option set picked
/// by the flags byte (each profile, masks, zero modes), as the proxy's relay asks them.
let optionSets: [EmulationOptions] = Profile.all.map(\.options) + [
    try! EmulationOptions(arguments: ["--mask", "fast-zero,trim,fua,df,cache,multi-conn,block-status-payload"]),
    try! EmulationOptions(arguments: ["--zeromode", "emulate", "--fastzeromode", "ignore"]),
    try! EmulationOptions(arguments: ["--zeromode", "notrim", "--fastzeromode", "slow"]),
    try! EmulationOptions(arguments: ["--read-only", "--no-meta-contexts"]),
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Chunker(UnsafeRawBufferPointer(start: data, count: size))
    let options = optionSets[Int(input.flags) % optionSets.count]
    var decoder = ConversationDecoder()
    var events: [ConversationEvent] = []
    var upstream: TransmissionFlags = []
    var shown: TransmissionFlags = []
    var maxPayload: UInt32?
    for r in input.records {
        events.removeAll(keepingCapacity: true)
        decoder.feed(r.toClient ? .serverToClient : .clientToServer, r.bytes, at: 0, into: &events)
        for e in events {
            switch e.kind {
            case .serverGreeting(.newstyle(let f)):
                _ = options.handshakeFlags(upstream: f)
            case .serverGreeting(.oldstyle(let o)):
                shown = options.shownFlags(upstream: o.transmissionFlags, structuredOrExtended: false)
            case .clientFlags(let f):
                _ = options.acceptsClientFlags(f)
            case .option(let h, _):
                _ = options.optionDecision(h.option)
            case .transmissionStarted(let info):
                upstream = info.flags
                shown = options.shownFlags(upstream: info.flags, structuredOrExtended: info.structuredReplies || info.extendedHeaders)
                maxPayload = info.blockSize?.maximum
            case .request(let req):
                _ = options.requestDecision(req.header, shown: shown, upstream: upstream, maxPayload: maxPayload)
            case .optionReply, .exportNameReply, .simpleReply, .replyChunk, .payload, .completed, .tlsStarted,
                 .opaque, .violation, .compliance, .gap, .skipped, .closed:
                break
            }
        }
    }
    return 0
}
