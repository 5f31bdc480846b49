import NBDConversation
import NBDProtocol

/// Counters for one command: requests, bytes, errors by name, flags by name, and for
/// WRITE_ZEROES the fast=0 / fast=1 split that the fast-zero work is about.
public struct CommandStats: Sendable, Equatable {
    public var requests: UInt64 = 0
    /// Sum of request lengths (data bytes for READ/WRITE, the range for the others).
    public var bytes: UInt64 = 0
    public var errors: [String: UInt64] = [:]
    /// Counts per CommandFlags bit, indexed as `CommandFlags.all`, plus unknown bits.
    public var flagCounts: [UInt64] = Array(repeating: 0, count: CommandFlags.all.count)
    public var unknownFlags: UInt64 = 0
    public var fast0: UInt64 = 0
    public var fast1: UInt64 = 0
    public var abandoned: UInt64 = 0
    public var latency = LatencyHistogram()

    public init() {}

    mutating func count(request r: RequestEvent) {
        let h = r.header
        requests += 1
        bytes &+= r.effectLength
        if h.flags.rawValue != 0 {
            for (i, f) in CommandFlags.all.enumerated() where h.flags.contains(f.0) { flagCounts[i] += 1 }
            if h.flags.rawValue & ~CommandFlags.known.rawValue != 0 { unknownFlags += 1 }
        }
        if case .writeZeroes = h.command {
            if h.flags.contains(.fastZero) { fast1 += 1 } else { fast0 += 1 }
        }
    }

    mutating func count(completed c: CompletedRequest) {
        if let name = c.statisticsError { errors[name, default: 0] += 1 }
        switch c.outcome {
        case .replied: latency.record(c.latencyNanoseconds)
        case .abandoned: abandoned += 1
        case .noReply: break
        }
    }

    public mutating func merge(_ o: CommandStats) {
        requests += o.requests
        bytes &+= o.bytes
        for (k, v) in o.errors { errors[k, default: 0] += v }
        for i in flagCounts.indices { flagCounts[i] += o.flagCounts[i] }
        unknownFlags += o.unknownFlags
        fast0 += o.fast0
        fast1 += o.fast1
        abandoned += o.abandoned
        latency.merge(o.latency)
    }

    public var errorCount: UInt64 { errors.values.reduce(0, +) }

    public func flagCount(_ name: String) -> UInt64 {
        CommandFlags.all.firstIndex { $0.1 == name }.map { flagCounts[$0] } ?? 0
    }
}

/// Statistics of one connection (or of all of them merged), computed from events only.
public struct ConnectionStats: Sendable, Equatable {
    /// Commands 0-8 by wire value; unknown commands by name.
    public var known: [CommandStats] = Array(repeating: CommandStats(), count: 9)
    public var unknown: [UInt16: CommandStats] = [:]
    public var connections = 0
    public var violations: [String: UInt64] = [:]
    /// Compliance notes by code: departures from the spec text that real peers make.
    public var compliance: [String: UInt64] = [:]
    public var bytesClientToServer: UInt64 = 0
    public var bytesServerToClient: UInt64 = 0
    /// Capture problems: bytes missing, and bytes passed over to find the next message.
    public var gapBytes: UInt64 = 0
    public var skippedBytes: UInt64 = 0

    public init() {}

    public mutating func record(_ event: ConversationEvent) {
        switch event.kind {
        case .request(let r):
            update(r.header.command) { $0.count(request: r) }
        case .completed(let c):
            update(c.request.command) { $0.count(completed: c) }
        case .violation(let v):
            violations[v.code.rawValue, default: 0] += 1
        case .compliance(let c):
            compliance[c.code.rawValue, default: 0] += 1
        case .transmissionStarted, .serverGreeting, .clientFlags, .option, .optionReply, .exportNameReply,
             .simpleReply, .replyChunk, .payload, .tlsStarted, .opaque, .closed:
            break
        case .gap(let n):
            gapBytes &+= n
        case .skipped(let n):
            skippedBytes &+= n
            break
        }
    }

    @inline(__always)
    mutating func update(_ c: NBDCommand, _ body: (inout CommandStats) -> Void) {
        let raw = Int(c.rawValue)
        if raw < known.count { body(&known[raw]) } else { body(&unknown[c.rawValue, default: CommandStats()]) }
    }

    public mutating func merge(_ o: ConnectionStats) {
        for i in known.indices { known[i].merge(o.known[i]) }
        for (k, v) in o.unknown { unknown[k, default: CommandStats()].merge(v) }
        connections += o.connections
        for (k, v) in o.violations { violations[k, default: 0] += v }
        for (k, v) in o.compliance { compliance[k, default: 0] += v }
        bytesClientToServer += o.bytesClientToServer
        bytesServerToClient += o.bytesServerToClient
        gapBytes += o.gapBytes
        skippedBytes += o.skippedBytes
    }

    /// Commands that were seen, by spec name, in wire order.
    public var commands: [(String, CommandStats)] {
        var out: [(String, CommandStats)] = []
        for (i, s) in known.enumerated() where s.requests > 0 {
            out.append((NBDCommand(rawValue: UInt16(i)).name, s))
        }
        for (k, s) in unknown.sorted(by: { $0.key < $1.key }) where s.requests > 0 {
            out.append((NBDCommand(rawValue: k).name, s))
        }
        return out
    }

    public subscript(command name: String) -> CommandStats? {
        commands.first { $0.0 == name }?.1
    }

    public var totalRequests: UInt64 { commands.reduce(0) { $0 + $1.1.requests } }
}

extension CompletedRequest {
    /// The error the statistics count for this request: the reply's errno name, ENOTCONN
    /// for one the client never got an answer to (as the log's error=ENOTCONN says), nil
    /// for a success or a DISC. The picture marks errors by the same rule.
    public var statisticsError: String? {
        switch outcome {
        case .replied: return error == .ok ? nil : error.name
        case .abandoned: return "ENOTCONN"
        case .noReply: return nil
        }
    }

    /// The latency the statistics record: only for a request that was answered.
    public var statisticsLatency: UInt64? {
        switch outcome {
        case .replied: return latencyNanoseconds
        case .abandoned, .noReply: return nil
        }
    }
}
