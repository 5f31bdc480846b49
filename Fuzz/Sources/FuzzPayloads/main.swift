import FuzzSupport
import NBDProtocol
import NIOCore

/// Every option, option reply and reply chunk payload parser, and the headers, on the same
/// bytes; byte 0 picks the option, reply and chunk types.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 1 else { return 0 }
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    let selector = raw[0]
    let body = buffer(UnsafeRawBufferPointer(rebasing: raw[1...]))
    let options: [NBDOption] = [.exportName, .info, .go, .listMetaContext, .setMetaContext, .list, .abort, .structuredReply, .extendedHeaders, .unknown(99)]
    _ = try? OptionData.parse(option: options[Int(selector) % options.count], data: body)
    let replies: [UInt32] = [1, 2, 3, 4, 0x8000_0001, 0x8000_0005, 0x8000_000a, 77]
    _ = try? OptionReplyData.parse(type: OptionReplyType(rawValue: replies[Int(selector >> 4) % replies.count]), data: body)
    let chunks: [UInt16] = [0, 1, 2, 5, 6, 0x8001, 0x8002, 77, 0x8000 | 77]
    let type = ReplyChunkType(rawValue: chunks[Int(selector) % chunks.count])
    _ = try? ChunkPayload.parse(type: type, payload: body, totalLength: UInt64(body.readableBytes))
    var b = body
    _ = try? RequestHeader.read(from: &b, extended: selector & 1 != 0)
    b = body
    _ = try? ReplyHeader.read(from: &b, allowSimple: true, allowStructured: true, allowExtended: selector & 2 != 0)
    b = body
    _ = try? ServerGreeting.read(from: &b)
    return 0
}
