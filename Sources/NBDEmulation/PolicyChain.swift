import NBDProtocol

/// The layers in the order given on the command line, the first nearest the client, as
/// nbdkit stacks `--filter=A --filter=B plugin` with A nearest the client: a request
/// goes through the layers in order, and a layer that answers it (an error rule, the
/// emulation's refusals, `--no-extents`) hides it from the layers after it. Each proxied
/// connection has its own copy (counters and random state are per connection).
public struct PolicyChain: Hashable, Sendable {
    public var layers: [PolicyLayer]
    /// Requests forwarded so far on this connection (for `--disconnect-after requests=N`).
    var forwarded: UInt64 = 0

    /// The longest READ or WRITE `--max-payload` splits.
    public static let maxSplitLength: UInt64 = 64 << 20

    public init(_ layers: [PolicyLayer] = []) {
        self.layers = layers
    }

    /// Nothing to rewrite, delay or shape: the relay may forward bytes as they come.
    public var isTransparent: Bool {
        layers.allSatisfy { layer in
            if case .emulate(let o) = layer { return o.isTransparent }
            return false
        }
    }

    /// The emulation options, if a layer holds them (transparent otherwise).
    public var emulation: EmulationOptions {
        for case .emulate(let o) in layers { return o }
        return .transparent
    }

    /// The smallest `--max-payload`, which the client is shown as NBD_INFO_BLOCK_SIZE's
    /// maximum payload.
    public var maxPayload: UInt32? {
        layers.compactMap { if case .maxPayload(let n) = $0 { return n } else { return nil } }.min()
    }

    /// Every `--rate` given, as one set of limits.
    public var rate: RateLayer? {
        let all = layers.compactMap { if case .rate(let r) = $0 { return r } else { return nil } }
        guard let first = all.first else { return nil }
        return RateLayer(limits: all.flatMap(\.limits), burstSeconds: all.map(\.burstSeconds).max() ?? first.burstSeconds)
    }

    public var disconnect: DisconnectLayer? {
        for case .disconnect(let d) in layers { return d }
        return nil
    }

    /// Runs one request through the layers. A layer that turns the request into others
    /// (the emulation's WRITEs of zeroes, `--max-payload`'s pieces) shows the layers after
    /// it what it sends, as nbdkit's filters below one see the calls it makes: a delay
    /// after it counts once per piece (nbdkit's filters take pieces one after another), an
    /// error rule after it matches the pieces' command and fails the client's request.
    public mutating func request(_ context: RequestContext) -> RequestPlan {
        var plan = RequestPlan(header: context.header)
        var command = LayerCommand(context.header.command)
        var pieces: UInt64 = 1
        layers: for i in layers.indices {
            switch layers[i] {
            case .emulate(let options):
                var maxPayload = context.upstreamMaxPayload
                if let limit = self.maxPayload { maxPayload = min(maxPayload ?? limit, limit) }
                switch options.requestDecision(plan.header, shown: context.shown, upstream: context.upstream,
                                               maxPayload: maxPayload, exportSize: context.exportSize) {
                case .forward(let h):
                    plan.header = h
                case .answer(let error, let reason):
                    plan.outcome = .answer(error, reason: "\(reason)", layer: "emulate")
                    break layers
                case .emulateZero(let writes):
                    plan.outcome = .emulateZero(writes)
                    command = .write
                    pieces = UInt64(writes.count)
                }
            case .delay(var d):
                plan.delay += d.delay(for: command) &* pieces
                layers[i] = .delay(d)
            case .error(var rule):
                let fires = rule.fires(plan.header, as: command, fileExists: context.fileExists)
                layers[i] = .error(rule)
                if fires {
                    plan.outcome = .answer(rule.error, reason: "injected (--error)", layer: "error")
                    break layers
                }
            case .maxPayload(let n):
                if case .forward = plan.outcome, command == .read || command == .write, plan.header.length > Self.maxSplitLength {
                    // nbdkit's server refuses these before any filter too; splitting them
                    // would cost memory in proportion to a length the client chooses.
                    plan.outcome = .answer(.einval, reason: "longer than 64 MiB, which --max-payload does not split", layer: "max-payload")
                    break layers
                }
                // A range past 2^64 is not split: the upstream refuses it whole.
                if case .forward = plan.outcome, command == .read || command == .write, plan.header.length > UInt64(n),
                   !plan.header.offset.addingReportingOverflow(plan.header.length).overflow {
                    plan.maxPiece = min(plan.maxPiece ?? n, n)
                    pieces = plan.pieces
                }
            case .noExtents:
                if case .forward = plan.outcome, let answer = Self.allData(plan.header, context) {
                    plan.outcome = answer
                    break layers
                }
            case .disconnect, .rate:
                break
            }
        }
        switch plan.outcome {
        case .forward, .emulateZero:
            if case .requests(let n) = disconnect?.point {
                forwarded += 1
                if forwarded == n { plan.disconnectAfter = true }
            }
        case .answer, .answerAllData:
            break
        }
        return plan
    }

    /// `--no-extents`: a valid BLOCK_STATUS gets one extent covering the request, flags 0
    /// (allocated data), for every context it asks about, as nbdkit's server answers for
    /// a plugin without extents. Anything the upstream would refuse (no context chosen, a
    /// zero length, a range past the end) goes upstream for its own answer.
    static func allData(_ h: RequestHeader, _ c: RequestContext) -> RequestPlan.Outcome? {
        guard case .blockStatus = h.command, h.length > 0, !c.metaContexts.isEmpty,
              let size = c.exportSize, h.offset < size else { return nil }
        let contexts = c.contextFilter ?? c.metaContexts
        guard !contexts.isEmpty, contexts.allSatisfy(c.metaContexts.contains) else { return nil }
        return .answerAllData(contexts: contexts, length: min(h.length, size - h.offset))
    }
}
