import NBDConversation
import NBDProtocol
import NIOCore

/// Negotiates with the upstream afresh on behalf of one recorded connection: it asks
/// for what the recorded client asked for (its options in order, with their data), as
/// far as the upstream offers it, and adapts where a real client would: extended headers
/// refused means structured replies are asked next; NBD_OPT_GO unsupported means
/// NBD_OPT_EXPORT_NAME. Pure: it takes the replay connection's decoder events and returns
/// the bytes to send; the connection's decoder, fed the same bytes, says what was agreed.
public struct ReplayNegotiator {
    public struct PlannedOption: Sendable {
        public var option: NBDOption
        public var data: OptionData
        /// The recorded exchange this stands for; nil when the replay added it.
        public var recorded: RecordedOption?
    }

    /// How an option fared in the replay, beside its recording.
    public struct OptionResult: Sendable {
        public var option: NBDOption
        public var recorded: RecordedOption?
        public var reply: OptionReplyType?
        public var names: [String] = []
    }

    public enum Step {
        /// Bytes to send (possibly none); keep feeding events.
        case send(ByteBuffer)
        /// Nothing more to negotiate and no transmission coming (the recorded session ended
        /// in negotiation, an ABORT was sent, or the upstream refused the export): send
        /// these last bytes, then close.
        case finished(ByteBuffer)
    }

    public private(set) var plan: [PlannedOption]
    public private(set) var results: [OptionResult] = []
    /// Options of the recording that are not sent, with why.
    public private(set) var notReplayed: [String] = []
    let recorded: RecordedNegotiation
    var next = 0
    var waitingFor: Int?
    var extendedAgreed = false
    let allocator = ByteBufferAllocator()

    /// `exportName` replaces the recorded export name when given.
    public init(recorded: RecordedNegotiation, exportName: String? = nil) {
        self.recorded = recorded
        var plan: [PlannedOption] = []
        if !recorded.known || recorded.oldstyle {
            // Nothing recorded to repeat: ask what the requests need.
            let name = exportName ?? ""
            if !recorded.oldstyle {
                plan.append(PlannedOption(option: recorded.extendedRequests ? .extendedHeaders : .structuredReply, data: .opaque(length: 0)))
                plan.append(PlannedOption(option: .setMetaContext, data: .metaContext(MetaContextRequest(exportName: name, queries: ["base:allocation"]))))
                plan.append(PlannedOption(option: .go, data: .info(InfoRequest(exportName: name, requests: [.blockSize]))))
            } else {
                plan.append(PlannedOption(option: .exportName, data: .exportName(name)))
            }
        } else {
            var dropped: [String] = []
            for o in recorded.options {
                var data = o.data
                switch o.header.option {
                case .startTLS:
                    dropped.append("NBD_OPT_STARTTLS (the replay does not speak TLS)")
                    continue
                case .peekExport, .unknown:
                    if case .opaque(let n) = data, n > 0 {
                        dropped.append("\(o.header.option.name) (its data is not decoded)")
                        continue
                    }
                case .exportName, .abort, .list, .info, .go, .structuredReply, .listMetaContext, .setMetaContext, .extendedHeaders:
                    break
                }
                if let exportName { data = Self.renamed(data, exportName) }
                plan.append(PlannedOption(option: o.header.option, data: data, recorded: o))
            }
            notReplayed = dropped
        }
        self.plan = plan
    }

    static func renamed(_ data: OptionData, _ name: String) -> OptionData {
        switch data {
        case .exportName: return .exportName(name)
        case .info(var r): r.exportName = name; return .info(r)
        case .metaContext(var m): m.exportName = name; return .metaContext(m)
        case .opaque: return data
        }
    }

    /// One event of the replay connection's decoder; returns what to do.
    public mutating func handle(_ kind: ConversationEvent.Kind) -> Step {
        switch kind {
        case .serverGreeting(let g):
            switch g {
            case .oldstyle:
                return .send(allocator.buffer(capacity: 0))
            case .newstyle(let flags):
                var out = allocator.buffer(capacity: 64)
                var wanted: ClientFlags = recorded.known && !recorded.oldstyle ? recorded.clientFlags : .known
                if !flags.contains(.fixedNewstyle) { wanted.remove(.fixedNewstyle) }
                if !flags.contains(.noZeroes) { wanted.remove(.noZeroes) }
                out.writeInteger(wanted.rawValue)
                return sendNext(&out)
            }
        case .optionReply(let h, let data, let final):
            guard let w = waitingFor else { return .send(allocator.buffer(capacity: 0)) }
            switch data {
            case .metaContext(_, let name), .server(let name, _): results[results.count - 1].names.append(name)
            case .ack, .info, .error, .unknown: break
            }
            guard final else { return .send(allocator.buffer(capacity: 0)) }
            results[results.count - 1].reply = h.type
            waitingFor = nil
            // NBD_OPT_GO acknowledged: transmission starts (the decoder says so next).
            if plan[w].option == .go && h.type == .ack { return .send(allocator.buffer(capacity: 0)) }
            adapt(after: w, reply: h.type)
            var out = allocator.buffer(capacity: 64)
            return sendNext(&out)
        case .clientFlags, .option, .exportNameReply, .transmissionStarted, .request, .simpleReply, .replyChunk, .payload,
             .completed, .tlsStarted, .opaque, .violation, .compliance, .gap, .skipped, .closed:
            return .send(allocator.buffer(capacity: 0))
        }
    }

    /// What a real client does on a refusal.
    mutating func adapt(after index: Int, reply: OptionReplyType) {
        let option = plan[index].option
        switch option {
        case .extendedHeaders:
            if reply == .ack {
                extendedAgreed = true
            } else if !plan[(index + 1)...].contains(where: { $0.option == .structuredReply }) {
                plan.insert(PlannedOption(option: .structuredReply, data: .opaque(length: 0)), at: index + 1)
            }
        case .go:
            if reply == .errUnsup, case .info(let r) = plan[index].data {
                plan.insert(PlannedOption(option: .exportName, data: .exportName(r.exportName)), at: index + 1)
            }
        case .exportName, .abort, .list, .peekExport, .startTLS, .info, .structuredReply, .listMetaContext, .setMetaContext, .unknown:
            break
        }
    }

    mutating func sendNext(_ out: inout ByteBuffer) -> Step {
        while next < plan.count {
            let i = next
            next += 1
            let p = plan[i]
            if p.option == .structuredReply && extendedAgreed { continue }
            var data = allocator.buffer(capacity: 64)
            switch p.data {
            case .exportName(let name): data.writeString(name)
            case .info(let r): r.write(to: &data)
            case .metaContext(let m): m.write(to: &data)
            case .opaque: break
            }
            OptionHeader(option: p.option, dataLength: UInt32(data.readableBytes)).write(to: &out)
            out.writeBuffer(&data)
            results.append(OptionResult(option: p.option, recorded: p.recorded))
            switch p.option {
            case .exportName:
                // No option reply: the server's answer starts transmission.
                return .send(out)
            case .abort:
                // Its ACK is waited for (the server may also just close): the replay
                // compares it with the recorded one, then the plan is over.
                waitingFor = i
                next = plan.count
                return .send(out)
            case .list, .peekExport, .startTLS, .info, .go, .structuredReply, .listMetaContext, .setMetaContext, .extendedHeaders, .unknown:
                waitingFor = i
                return .send(out)
            }
        }
        return .finished(out)
    }
}
