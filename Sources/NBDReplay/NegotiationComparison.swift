import NBDConversation
import NBDProtocol

/// How a replay's negotiation differs from its recording's, one line per difference:
/// each option's final reply, the contexts and exports named, and what transmission
/// started with (size, flags, block sizes, structured replies, extended headers, meta
/// contexts by name).
enum NegotiationComparison {
    /// The differences, and notes on options the replay added (not differences: they
    /// follow from a refusal already listed, or stand in for a handshake not recorded).
    static func differences(recorded: RecordedNegotiation, replayed: TransmissionInfo?,
                            options: [ReplayNegotiator.OptionResult]) -> (differences: [String], notes: [String]) {
        var out: [String] = []
        var notes: [String] = []
        for o in options {
            guard let r = o.recorded else {
                let reply = o.option == .exportName ? "sent" : (o.reply.map { "NBD_REP_\($0.name)" } ?? "no reply")
                notes.append("NBD_OPT_\(o.option.name) added by the replay: \(reply)")
                continue
            }
            if r.finalReply != o.reply && !(r.header.option == .exportName) {
                out.append("NBD_OPT_\(o.option.name): recorded \(r.finalReply.map { "NBD_REP_\($0.name)" } ?? "no reply"), replayed \(o.reply.map { "NBD_REP_\($0.name)" } ?? "no reply")")
            }
            if r.names.sorted() != o.names.sorted() {
                out.append("NBD_OPT_\(o.option.name) names: recorded [\(r.names.joined(separator: ", "))], replayed [\(o.names.joined(separator: ", "))]")
            }
        }
        guard recorded.known else { return (out, notes) }
        switch (recorded.info, replayed) {
        case (nil, nil):
            break
        case (nil, .some):
            out.append("transmission: not reached in the recording, reached in the replay")
        case (.some, nil):
            out.append("transmission: reached in the recording, not in the replay")
        case (.some(let a), .some(let b)):
            if a.size != b.size { out.append("export size: recorded \(a.size), replayed \(b.size)") }
            if a.flags != b.flags {
                let lost = a.flags.subtracting(b.flags).names, gained = b.flags.subtracting(a.flags).names
                var s = "transmission flags: recorded 0x\(String(a.flags.rawValue, radix: 16)), replayed 0x\(String(b.flags.rawValue, radix: 16))"
                if !lost.isEmpty { s += "; not offered: \(lost.joined(separator: "|"))" }
                if !gained.isEmpty { s += "; newly offered: \(gained.joined(separator: "|"))" }
                out.append(s)
            }
            if a.structuredReplies != b.structuredReplies {
                out.append("structured replies: recorded \(a.structuredReplies ? "yes" : "no"), replayed \(b.structuredReplies ? "yes" : "no")")
            }
            if a.extendedHeaders != b.extendedHeaders {
                out.append("extended headers: recorded \(a.extendedHeaders ? "yes" : "no"), replayed \(b.extendedHeaders ? "yes" : "no")")
            }
            let ca = Set(a.metaContexts.values), cb = Set(b.metaContexts.values)
            if ca != cb {
                out.append("meta contexts: recorded [\(ca.sorted().joined(separator: ", "))], replayed [\(cb.sorted().joined(separator: ", "))]")
            }
            let bsA = a.blockSize.map { "\($0.minimum)/\($0.preferred)/\($0.maximum)" } ?? "none"
            let bsB = b.blockSize.map { "\($0.minimum)/\($0.preferred)/\($0.maximum)" } ?? "none"
            if bsA != bsB { out.append("block sizes (min/preferred/max): recorded \(bsA), replayed \(bsB)") }
        }
        return (out, notes)
    }
}
