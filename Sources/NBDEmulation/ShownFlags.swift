import NBDProtocol

/// The transmission flags the client is shown: in NBD_INFO_EXPORT (INFO and GO), the
/// EXPORT_NAME reply and the oldstyle greeting alike, since the spec requires an INFO and
/// the GO after it to agree.
extension EmulationOptions {
    /// What a read-only export does not offer, as nbdkit 1.32 shows it (`nbdkit -r`:
    /// 0xded → 0x587, fixture nbdkit-readonly.json): FUA, trim, write zeroes and fast
    /// zero go; flush, cache, DF and multi-conn stay. RESIZE goes too: it is a write.
    /// (qemu-nbd 7.2 `-r` keeps SEND_FUA, 0x48f; nbdtap follows nbdkit and the spec,
    /// which makes FUA meaningful only for writes.)
    public static let hiddenWhenReadOnly: TransmissionFlags = [.sendFUA, .sendTrim, .sendWriteZeroes, .sendFastZero, .sendResize]

    /// The flags shown for an upstream that showed `upstream`, on a connection where the
    /// client has (`structuredOrExtended`) or has not negotiated structured replies or
    /// extended headers. Steps, in order:
    /// 1. zero modes, exactly as nbdkit's nozero filter advertises them (a read-only
    ///    upstream is left alone, as nozero has no effect on read-only connections);
    /// 2. `--mask` (masking write-zeroes also hides fast zero);
    /// 3. `--read-only`;
    /// 4. SEND_DF only with structured replies, BLOCK_STATUS_PAYLOAD only with extended
    ///    headers (spec MUSTs; also what refusing those options implies);
    /// 5. never SEND_FAST_ZERO without SEND_WRITE_ZEROES (spec MUST).
    /// Transparent options return `upstream` untouched, even if it breaks those rules: a
    /// transparent proxy must show what the server sent.
    public func shownFlags(upstream: TransmissionFlags, structuredOrExtended: Bool) -> TransmissionFlags {
        if isTransparent { return upstream }
        var flags = upstream
        if !upstream.contains(.readOnly) { applyZeroModes(to: &flags, upstream: upstream) }
        for feature in masked { flags.subtract(feature.hiddenFlags) }
        if readOnly {
            flags.insert(.readOnly)
            flags.subtract(Self.hiddenWhenReadOnly)
        }
        if !structuredOrExtended || !allowsStructuredReplies { flags.remove(.sendDF) }
        if !structuredOrExtended || !allowsExtendedHeaders { flags.remove(.blockStatusPayload) }
        if !flags.contains(.sendWriteZeroes) { flags.remove(.sendFastZero) }
        return flags
    }

    /// nozero's `can_zero` and `can_fast_zero` (filters/nozero/nozero.c, nbdkit 1.32.5),
    /// with nbdkit's core emulating write zeroes for an upstream without them under
    /// notrim and plugin (server/plugins.c; measured, fixture nozero.json, plugin
    /// "no-zero"). Passthrough is plugin without that emulation.
    func applyZeroModes(to flags: inout TransmissionFlags, upstream: TransmissionFlags) {
        let upstreamZero = upstream.contains(.sendWriteZeroes)
        let upstreamFast = upstreamZero && upstream.contains(.sendFastZero)
        let zero: Bool
        switch zeroMode {
        case .none: zero = false
        case .emulate, .notrim, .plugin: zero = true
        case .passthrough: zero = upstreamZero
        }
        let fast: Bool
        switch (zeroMode, fastZeroMode) {
        case (.none, _): fast = false
        case (.emulate, .default): fast = true
        case (.notrim, .default), (.plugin, .default), (.passthrough, .default): fast = upstreamFast
        case (.emulate, .none), (.notrim, .none), (.plugin, .none), (.passthrough, .none): fast = false
        case (.emulate, .slow), (.emulate, .ignore), (.notrim, .slow), (.notrim, .ignore),
             (.plugin, .slow), (.plugin, .ignore), (.passthrough, .slow), (.passthrough, .ignore):
            fast = true
        }
        flags.remove([.sendWriteZeroes, .sendFastZero])
        if zero { flags.insert(.sendWriteZeroes) }
        if zero && fast { flags.insert(.sendFastZero) }
    }

    /// Whether nbdtap serves WRITE_ZEROES itself by writing zeroes, rather than forwarding
    /// it: always under emulate, and under notrim and plugin when the upstream has no
    /// write zeroes of its own (nbdkit's core does the same for such a plugin).
    public func emulatesZeroes(upstream: TransmissionFlags) -> Bool {
        switch zeroMode {
        case .emulate: return true
        case .notrim, .plugin: return !upstream.contains(.sendWriteZeroes)
        case .passthrough, .none: return false
        }
    }
}
