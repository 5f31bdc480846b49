import NBDProtocol

/// Whether a replayed reply says what the recorded one said: the same success or error
/// (by errno), and for successful READs the same data, for BLOCK_STATUS the same extents.
public enum OutcomeComparison {
    public enum Verdict: Hashable, Sendable {
        case match
        /// The replayed reply matches as far as the capture allows comparing it (the
        /// recorded data was incomplete, say), with why.
        case matchAsFarAsKnown(String)
        case differ(recorded: String, replayed: String)
        /// The capture holds no reply to compare with.
        case notCompared(String)
    }

    public static func compare(recorded: ReplyOutcome, replayed: ReplyOutcome, effectLength: UInt64) -> Verdict {
        switch (recorded.status, replayed.status) {
        case (.abandoned, _):
            return .notCompared("the capture has no reply to it")
        case (.noReply, .noReply):
            return .match
        case (.replied(let a), .replied(let b)) where a != b:
            return .differ(recorded: describe(recorded), replayed: describe(replayed))
        case (.replied, .replied):
            break
        case (.noReply, _), (.replied, _):
            return .differ(recorded: describe(recorded), replayed: describe(replayed))
        }
        var partly: String?
        switch (recorded.data, replayed.data) {
        case (.digest(let a)?, .digest(let b)?):
            if a != b { return .differ(recorded: describe(recorded), replayed: describe(replayed)) }
        case (.unknown(let why)?, _):
            partly = "recorded data not comparable: \(why)"
        case (_, .unknown(let why)?):
            return .differ(recorded: describe(recorded), replayed: "return=0 data unreadable: \(why)")
        case (.digest?, nil), (nil, _):
            break
        }
        if !recorded.extents.isEmpty || !replayed.extents.isEmpty {
            var theirs = replayed.extents
            // A capture that starts after its handshake knows contexts only by id
            // ("context 1"): one such context against one unmatched replayed context is
            // taken to be the same.
            let onlyRecorded = Set(recorded.extents.keys).subtracting(theirs.keys)
            let onlyReplayed = Set(theirs.keys).subtracting(recorded.extents.keys)
            if onlyRecorded.count == 1, onlyReplayed.count == 1, let a = onlyRecorded.first, a.hasPrefix("context "), let b = onlyReplayed.first {
                theirs[a] = theirs.removeValue(forKey: b)
            }
            for name in Set(recorded.extents.keys).union(theirs.keys).sorted() {
                let a = normalized(recorded.extents[name], effectLength)
                let b = normalized(theirs[name], effectLength)
                guard let a, let b else {
                    return .differ(recorded: describe(recorded), replayed: describe(replayed))
                }
                if !sameOverCommonRange(a, b) { return .differ(recorded: describe(recorded), replayed: describe(replayed)) }
            }
        }
        if let partly { return .matchAsFarAsKnown(partly) }
        return .match
    }

    /// Extents clipped to the request's length, neighbours with the same flags merged: two
    /// servers may cut the same map differently.
    static func normalized(_ ds: [BlockDescriptor]?, _ length: UInt64) -> [BlockDescriptor]? {
        guard let ds else { return nil }
        var out: [BlockDescriptor] = []
        var covered: UInt64 = 0
        for d in ds where covered < length {
            let n = min(d.length, length - covered)
            covered += n
            if let last = out.last, last.status == d.status {
                out[out.count - 1].length += n
            } else {
                out.append(BlockDescriptor(length: n, status: d.status))
            }
        }
        return out
    }

    /// A server may describe less than was asked (the spec lets it stop early), so two
    /// maps are compared over the range both describe.
    static func sameOverCommonRange(_ a: [BlockDescriptor], _ b: [BlockDescriptor]) -> Bool {
        var i = 0, j = 0
        var restA = a.first?.length ?? 0, restB = b.first?.length ?? 0
        while i < a.count && j < b.count {
            if a[i].status != b[j].status { return false }
            let n = min(restA, restB)
            restA -= n
            restB -= n
            if restA == 0 { i += 1; restA = i < a.count ? a[i].length : 0 }
            if restB == 0 { j += 1; restB = j < b.count ? b[j].length : 0 }
        }
        return true
    }

    /// One side's outcome as the report prints it.
    public static func describe(_ o: ReplyOutcome) -> String {
        switch o.status {
        case .abandoned: return "no reply (connection ended)"
        case .noReply: return "no reply (NBD_CMD_DISC)"
        case .replied(let e):
            var s = e == .ok ? "return=0" : "return=-1 error=\(e.name)"
            switch o.data {
            case .digest(let d)?: s += " data=\(d.hex)"
            case .unknown?, nil: break
            }
            for (name, ds) in o.extents.sorted(by: { $0.key < $1.key }) {
                let shown = ds.prefix(8).map { "\($0.length):\($0.status)" }.joined(separator: ",")
                s += " extents[\(name)]=\(shown)\(ds.count > 8 ? ",... (\(ds.count))" : "")"
            }
            return s
        }
    }
}
