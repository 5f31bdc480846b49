import Benchmark
import Foundation
import NBDConversation
import NBDProtocol
import NIOCore

// Micro-benchmarks of the conversation decoder alone: no sockets, no log, no statistics.
//
// Each benchmark feeds one synthetic connection per iteration: a fixed-newstyle handshake
// (STRUCTURED_REPLY, SET_META_CONTEXT base:allocation, GO) and then `requestsPerIteration`
// requests with their replies, `depth` in flight at a time, cut into 64 KiB chunks as a
// proxy reading a busy socket would see them. The messages are written with NBDProtocol's
// writers; payloads (READ and WRITE data) are zeros, which the decoder never looks at.
//
// Metrics: bytes/s and requests/s (both directions' bytes over the iteration's wall time),
// and malloc count, which the suite reports per request (the scaling factor is the number
// of requests per iteration, so the scaled `*` column of the output is per request).

/// Requests per iteration: equal to the scaling factor below, so scaled metrics are per request.
let requestsPerIteration = 1000
let chunkSize = 64 * 1024

enum Workload: CaseIterable {
    case read4KStructured
    case write4KSimple
    case read1MStructured

    var name: String {
        switch self {
        case .read4KStructured: return "decode 4KiB READ, structured replies (one data chunk)"
        case .write4KSimple: return "decode 4KiB WRITE, simple replies"
        case .read1MStructured: return "decode 1MiB READ, structured replies (one data chunk)"
        }
    }
    var command: NBDCommand { self == .write4KSimple ? .write : .read }
    var length: Int { self == .read1MStructured ? 1 << 20 : 4096 }
    /// Requests in flight at once: like fio at iodepth 32, or nbdcopy's 16 MiB queue.
    var depth: Int { self == .read1MStructured ? 16 : 32 }
}

/// A piece of one direction's stream: encoded message bytes, or opaque payload.
enum Piece {
    case bytes(ByteBuffer)
    case zeros(Int)

    var length: Int {
        switch self {
        case .bytes(let b): return b.readableBytes
        case .zeros(let n): return n
        }
    }
}

struct SyntheticConversation {
    var chunks: [(StreamDirection, ByteBuffer)] = []
    var totalBytes = 0
    var requests = 0
}

/// Builds the two streams as runs of one direction each; a run ends when the other side speaks.
struct StreamBuilder {
    var runs: [(StreamDirection, [Piece])] = []
    let allocator = ByteBufferAllocator()

    mutating func emit(_ d: StreamDirection, zeros: Int = 0, _ body: (inout ByteBuffer) -> Void) {
        var b = allocator.buffer(capacity: 64)
        body(&b)
        var pieces: [Piece] = [.bytes(b)]
        if zeros > 0 { pieces.append(.zeros(zeros)) }
        if let last = runs.last, last.0 == d {
            runs[runs.count - 1].1 += pieces
        } else {
            runs.append((d, pieces))
        }
    }
    mutating func client(zeros: Int = 0, _ body: (inout ByteBuffer) -> Void) { emit(.clientToServer, zeros: zeros, body) }
    mutating func server(zeros: Int = 0, _ body: (inout ByteBuffer) -> Void) { emit(.serverToClient, zeros: zeros, body) }

    mutating func option(_ o: NBDOption, _ data: ((inout ByteBuffer) -> Void)? = nil) {
        client { b in
            var d = ByteBufferAllocator().buffer(capacity: 16)
            data?(&d)
            OptionHeader(option: o, dataLength: UInt32(d.readableBytes)).write(to: &b)
            b.writeBuffer(&d)
        }
    }

    mutating func reply(_ o: NBDOption, _ type: OptionReplyType, _ data: OptionReplyData = .ack) {
        server { b in
            var d = ByteBufferAllocator().buffer(capacity: 16)
            data.write(to: &d)
            OptionReplyHeader(option: o, type: type, dataLength: UInt32(d.readableBytes)).write(to: &b)
            b.writeBuffer(&d)
        }
    }

    /// Cuts each run into chunks of at most `size` bytes. A chunk of payload only is a slice
    /// of one shared zero buffer, so 1 GiB of READ data costs no memory.
    func chunks(size: Int) -> [(StreamDirection, ByteBuffer)] {
        let zero = ByteBuffer(repeating: 0, count: size)
        var out: [(StreamDirection, ByteBuffer)] = []
        for (direction, pieces) in runs {
            var index = 0
            var offset = 0
            while index < pieces.count {
                var remaining = size
                var parts: [(Piece, Int, Int)] = []
                while remaining > 0, index < pieces.count {
                    let piece = pieces[index]
                    let take = min(remaining, piece.length - offset)
                    parts.append((piece, offset, take))
                    offset += take
                    remaining -= take
                    if offset == piece.length {
                        index += 1
                        offset = 0
                    }
                }
                let length = size - remaining
                let onlyZeros = parts.allSatisfy { if case .zeros = $0.0 { return true } else { return false } }
                if onlyZeros {
                    out.append((direction, zero.getSlice(at: 0, length: length)!))
                } else {
                    var b = allocator.buffer(capacity: length)
                    for (piece, start, take) in parts {
                        switch piece {
                        case .bytes(let src):
                            var slice = src.getSlice(at: src.readerIndex + start, length: take)!
                            b.writeBuffer(&slice)
                        case .zeros:
                            b.writeRepeatingByte(0, count: take)
                        }
                    }
                    out.append((direction, b))
                }
            }
        }
        return out
    }
}

func makeConversation(_ w: Workload, requests: Int = requestsPerIteration) -> SyntheticConversation {
    var s = StreamBuilder()
    // Fixed newstyle handshake, as nbdkit and libnbd negotiate it.
    s.server { ServerGreeting.newstyle([.fixedNewstyle, .noZeroes]).write(to: &$0) }
    s.client { $0.writeInteger(ClientFlags([.fixedNewstyle, .noZeroes]).rawValue) }
    s.option(.structuredReply)
    s.reply(.structuredReply, .ack)
    s.option(.setMetaContext) { MetaContextRequest(exportName: "", queries: ["base:allocation"]).write(to: &$0) }
    s.reply(.setMetaContext, .metaContext, .metaContext(id: 1, name: "base:allocation"))
    s.reply(.setMetaContext, .ack)
    s.option(.go) { InfoRequest(exportName: "", requests: [.blockSize]).write(to: &$0) }
    let size: UInt64 = 1 << 40
    s.reply(.go, .info, .info(.export(size: size, flags: TransmissionFlags(rawValue: 0xded))))
    s.reply(.go, .ack)

    let length = UInt64(w.length)
    let slots = size / length
    var next = 0
    while next < requests {
        let batch = next..<min(next + w.depth, requests)
        for i in batch {
            let offset = (UInt64(i) &* 7919 % slots) * length
            s.client(zeros: w.command == .write ? w.length : 0) {
                RequestHeader(flags: [], command: w.command, cookie: UInt64(i + 1), offset: offset, length: length).write(to: &$0)
            }
        }
        for i in batch {
            let offset = (UInt64(i) &* 7919 % slots) * length
            switch w {
            case .write4KSimple:
                s.server { SimpleReplyHeader(error: .ok, cookie: UInt64(i + 1)).write(to: &$0) }
            case .read4KStructured, .read1MStructured:
                let payload = ChunkPayload.offsetData(offset: offset, dataLength: length)
                s.server(zeros: w.length) {
                    ReplyChunkHeader(flags: .done, type: .offsetData, cookie: UInt64(i + 1), length: payload.wireLength).write(to: &$0)
                    payload.write(to: &$0)
                }
            }
        }
        next = batch.upperBound
    }
    s.client { RequestHeader(flags: [], command: .disc, cookie: 0, offset: 0, length: 0).write(to: &$0) }

    var conv = SyntheticConversation()
    conv.chunks = s.chunks(size: chunkSize)
    conv.totalBytes = conv.chunks.reduce(0) { $0 + $1.1.readableBytes }
    conv.requests = requests
    return conv
}

/// Decodes one whole conversation; returns the number of completed requests.
@inline(never)
func decode(_ conv: SyntheticConversation, events: inout [ConversationEvent], violations: inout Int) -> Int {
    var decoder = ConversationDecoder()
    var completed = 0
    var time: UInt64 = 1
    for (direction, bytes) in conv.chunks {
        decoder.feed(direction, bytes, at: time, into: &events)
        time &+= 1000
        for e in events {
            switch e.kind {
            case .completed: completed += 1
            case .violation: violations += 1
            default: break
            }
        }
        events.removeAll(keepingCapacity: true)
    }
    decoder.finish(.clientToServer, at: time, into: &events)
    decoder.finish(.serverToClient, at: time, into: &events)
    events.removeAll(keepingCapacity: true)
    return completed
}

enum Metrics {
    static let bytesPerSecond = BenchmarkMetric.custom("bytes/s", polarity: .prefersLarger, useScalingFactor: false)
    static let requestsPerSecond = BenchmarkMetric.custom("requests/s", polarity: .prefersLarger, useScalingFactor: false)
}

let benchmarks: @Sendable () -> Void = {
    let quick = ProcessInfo.processInfo.environment["NBDTAP_BENCH_QUICK"] != nil
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .cpuTotal, .mallocCountTotal, Metrics.bytesPerSecond, Metrics.requestsPerSecond],
        warmupIterations: 2,
        scalingFactor: .kilo,
        maxDuration: .seconds(quick ? 1 : 4),
        maxIterations: quick ? 200 : 2000
    )
    precondition(requestsPerIteration == BenchmarkScalingFactor.kilo.rawValue)

    for workload in Workload.allCases {
        let conv = makeConversation(workload)
        // Check once that the decoder sees exactly the requests we built, with no violation.
        var events: [ConversationEvent] = []
        var violations = 0
        let found = decode(conv, events: &events, violations: &violations)
        precondition(found == conv.requests && violations == 0,
                     "\(workload.name): decoded \(found) of \(conv.requests) requests, \(violations) violations")

        Benchmark(workload.name) { benchmark in
            var events: [ConversationEvent] = []
            events.reserveCapacity(256)
            var violations = 0
            let clock = ContinuousClock()
            let start = clock.now
            let completed = decode(conv, events: &events, violations: &violations)
            let elapsed = clock.now - start
            blackHole(completed)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            benchmark.measurement(Metrics.bytesPerSecond, Int(Double(conv.totalBytes) / seconds))
            benchmark.measurement(Metrics.requestsPerSecond, Int(Double(completed) / seconds))
        }
    }
}
