import NBDProtocol

/// The request decision. nbdtap steps in only where it changed something: a request using
/// a capability the upstream shows but nbdtap hides gets the answer a server without it
/// gives; one using a capability neither shows is forwarded, so the upstream's own answer
/// (whatever it is) reaches the client exactly as without nbdtap.
extension EmulationOptions {
    /// Flags a WRITE_ZEROES may carry when nbdtap serves it itself.
    static let writeZeroesFlags: CommandFlags = [.fua, .noHole, .fastZero]

    /// Decides one request. `shown` is what `shownFlags` gave this connection, `upstream`
    /// what the upstream showed, `maxPayload` the upstream's NBD_INFO_BLOCK_SIZE maximum if
    /// it sent one (only used to split emulated zeroes).
    ///
    /// Checks run in nbdkit 1.32's order (server/protocol.c validate_request): read-only
    /// first (EPERM), then flags (EINVAL), then commands (EINVAL), then the zero modes.
    /// `exportSize`, when known, bounds the WRITE_ZEROES nbdtap serves itself.
    public func requestDecision(_ request: RequestHeader, shown: TransmissionFlags,
                                upstream: TransmissionFlags, maxPayload: UInt32?, exportSize: UInt64? = nil) -> RequestDecision {
        if isTransparent { return .forward(request) }
        let hidden = upstream.subtracting(shown)

        if request.command.isWrite && shown.contains(.readOnly) && !upstream.contains(.readOnly) {
            return .answer(.eperm, .readOnly(request.command))
        }
        if request.flags.contains(.fua) && hidden.contains(.sendFUA) {
            return .answer(.einval, .hiddenFlag(.fua))
        }
        if request.flags.contains(.df) && hidden.contains(.sendDF) {
            return .answer(.einval, .hiddenFlag(.df))
        }
        if case .blockStatus = request.command, request.flags.contains(.payloadLen), hidden.contains(.blockStatusPayload) {
            return .answer(.einval, .hiddenFlag(.payloadLen))
        }
        if let needed = request.command.requiredTransmissionFlag, hidden.contains(needed) {
            return .answer(.einval, .hiddenCommand(request.command))
        }
        switch request.command {
        case .writeZeroes where shown.contains(.sendWriteZeroes):
            return emulatesZeroes(upstream: upstream)
                ? emulatedZeroDecision(request, shown: shown, maxPayload: maxPayload, exportSize: exportSize)
                : forwardedZeroDecision(request, shown: shown, upstream: upstream)
        case .read, .write, .disc, .flush, .trim, .cache, .writeZeroes, .blockStatus, .resize, .unknown:
            return .forward(request)
        }
    }

    /// WRITE_ZEROES that nbdtap serves itself: nbdtap is the server here, so it validates
    /// against what it showed, as nbdkit's core does for an emulating plugin.
    func emulatedZeroDecision(_ request: RequestHeader, shown: TransmissionFlags, maxPayload: UInt32?, exportSize: UInt64? = nil) -> RequestDecision {
        let invalid = request.flags.subtracting(Self.writeZeroesFlags)
        if !invalid.isEmpty { return .answer(.einval, .invalidFlags(invalid)) }
        if request.flags.contains(.fua) && !shown.contains(.sendFUA) { return .answer(.einval, .hiddenFlag(.fua)) }
        if request.flags.contains(.fastZero) {
            // Not advertised: the spec's EINVAL. nbdkit 1.32 aborts here (assertion in
            // backend_zero, fixture nozero.json); nbdtap must not.
            if !shown.contains(.sendFastZero) { return .answer(.einval, .hiddenFlag(.fastZero)) }
            // `ignore` strips the flag and the zero is written, as the 2019 nozero filter
            // did ("strips the flag before forwarding"). nbdkit 1.32's core fails it
            // instead (fixture nozero.json): a deliberate difference, so a client that
            // pre-zeroes with fast zeroes writes every zero byte instead (the slow
            // pre-zeroing pass of the fast-zero matrix, Docs/emulation.md).
            if fastZeroMode != .ignore { return .answer(.enotsup, .fastZeroEmulated) }
        }
        guard let writes = ZeroWrites(offset: request.offset, length: request.length, maxPayload: maxPayload,
                                      fua: request.flags.contains(.fua)) else {
            return .answer(.enospc, .beyondAddressSpace)
        }
        if let exportSize, request.offset > exportSize || request.length > exportSize - request.offset {
            return .answer(.enospc, .beyondExport(size: exportSize))
        }
        return .emulateZero(writes)
    }

    /// WRITE_ZEROES forwarded upstream, with nozero's rewriting (nozero_zero in
    /// filters/nozero/nozero.c): slow fails fast zeroes at once, ignore strips the flag,
    /// notrim forbids punching holes.
    func forwardedZeroDecision(_ request: RequestHeader, shown: TransmissionFlags, upstream: TransmissionFlags) -> RequestDecision {
        var out = request
        if request.flags.contains(.fastZero) {
            if !shown.contains(.sendFastZero) {
                // Hidden by nbdtap: EINVAL (spec). Shown by neither: the upstream's call.
                if upstream.contains(.sendFastZero) { return .answer(.einval, .hiddenFlag(.fastZero)) }
            } else {
                switch fastZeroMode {
                case .slow: return .answer(.enotsup, .fastZeroSlow)
                case .ignore: out.flags.remove(.fastZero)
                case .default, .none: break
                }
            }
        }
        switch zeroMode {
        case .notrim: out.flags.insert(.noHole)
        case .passthrough, .none, .emulate, .plugin: break
        }
        return .forward(out)
    }
}
