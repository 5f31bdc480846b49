import NBDEmulation
import NBDProtocol
import Testing

/// The transmission flags the client is shown: masks, read-only, and the negotiation rules.
@Suite struct ShownFlagsTests {
    @Test func transparentShowsUpstreamVerbatimEvenWhenItBreaksTheRules() {
        // DF without structured replies and fast zero without write zeroes are both spec
        // violations; a transparent proxy still must not hide them.
        let broken = flags(0x0001 | 0x0080 | 0x0800 | 0x1000)
        #expect(EmulationOptions.transparent.shownFlags(upstream: broken, structuredOrExtended: false) == broken)
    }

    @Test(arguments: MaskFeature.allCases)
    func eachMaskHidesItsFlagAndNothingElse(_ feature: MaskFeature) {
        let options = EmulationOptions(masked: [feature])
        let shown = options.shownFlags(upstream: everyFeature, structuredOrExtended: true)
        let expectedHidden: TransmissionFlags = feature == .writeZeroes ? [.sendWriteZeroes, .sendFastZero] : feature.flag
        #expect(shown == everyFeature.subtracting(expectedHidden), "\(shown.names)")
    }

    @Test func maskingWriteZeroesAlsoHidesFastZero() {
        let options = EmulationOptions(masked: [.writeZeroes])
        #expect(options.shownFlags(upstream: nbdkitFlags, structuredOrExtended: true) == flags(0xded & ~0x0840))
        #expect(MaskFeature.writeZeroes.hiddenFlags == [.sendWriteZeroes, .sendFastZero])
    }

    @Test func maskingFastZeroLeavesWriteZeroes() {
        let shown = EmulationOptions(masked: [.fastZero]).shownFlags(upstream: nbdkitFlags, structuredOrExtended: true)
        #expect(shown == flags(0x05ed))  // the value nbd-protocol.md gives for nbdkit with FAST_ZERO masked
    }

    @Test func maskingAFlagTheUpstreamLacksChangesNothing() {
        let upstream = flags(0x016d)  // nbd-server 3.24: no cache
        #expect(EmulationOptions(masked: [.cache]).shownFlags(upstream: upstream, structuredOrExtended: false) == upstream)
    }

    @Test func readOnlyHidesWhatNbdkitHides() {
        let options = EmulationOptions(readOnly: true)
        // nbdkit -r memory 1M: 0x587 with structured replies, 0x507 without (nbdkit-readonly.json).
        #expect(options.shownFlags(upstream: flags(0xded), structuredOrExtended: true) == flags(0x587))
        #expect(options.shownFlags(upstream: flags(0xd6d), structuredOrExtended: false) == flags(0x507))
        #expect(options.shownFlags(upstream: flags(0x0201), structuredOrExtended: false) == flags(0x0003), "RESIZE is a write")
    }

    @Test func dfOnlyWithStructuredReplies() {
        let options = EmulationOptions(masked: [.rotational])
        #expect(options.shownFlags(upstream: nbdkitFlags, structuredOrExtended: false) == flags(0xd6d))
        #expect(options.shownFlags(upstream: nbdkitFlags, structuredOrExtended: true) == flags(0xded))
        let refused = EmulationOptions(refused: [.structuredReplies])
        #expect(refused.shownFlags(upstream: nbdkitFlags, structuredOrExtended: true) == flags(0xd6d))
    }

    @Test func blockStatusPayloadOnlyWithExtendedHeaders() {
        let upstream = everyFeature
        let some = EmulationOptions(masked: [.rotational])
        #expect(some.shownFlags(upstream: upstream, structuredOrExtended: true).contains(.blockStatusPayload))
        #expect(!some.shownFlags(upstream: upstream, structuredOrExtended: false).contains(.blockStatusPayload))
        for refusal in [RefusableOption.extendedHeaders, .structuredReplies, .go] {
            let options = EmulationOptions(refused: [refusal])
            #expect(!options.shownFlags(upstream: upstream, structuredOrExtended: true).contains(.blockStatusPayload), "\(refusal)")
        }
        // Meta contexts, LIST and TLS have nothing to do with it.
        for refusal in [RefusableOption.metaContexts, .list, .tls] {
            let options = EmulationOptions(refused: [refusal])
            #expect(options.shownFlags(upstream: upstream, structuredOrExtended: true).contains(.blockStatusPayload), "\(refusal)")
        }
    }

    @Test func nonFixedNewstyleAndOldstyleCannotNegotiateStructuredReplies() {
        let nonFixed = EmulationOptions(maskedHandshake: [.fixedNewstyle])
        #expect(!nonFixed.shownFlags(upstream: everyFeature, structuredOrExtended: true).contains(.sendDF))
        let oldstyle = EmulationOptions(handshake: .oldstyle)
        #expect(oldstyle.shownFlags(upstream: flags(0xd6d), structuredOrExtended: false) == flags(0xd6d))
    }

    @Test func unknownUpstreamBitsPassThrough() {
        let upstream = flags(0x8000 | 0x0d6d)
        #expect(EmulationOptions(masked: [.trim]).shownFlags(upstream: upstream, structuredOrExtended: false) == flags(0x8000 | 0x0d4d))
    }

    @Test func alwaysHiddenAndChangesDescribeTheOptions() {
        let options = EmulationOptions(masked: [.writeZeroes], readOnly: true, refused: [.structuredReplies])
        #expect(options.alwaysHidden == [.sendFUA, .sendTrim, .sendWriteZeroes, .sendDF, .sendResize, .sendFastZero, .blockStatusPayload])
        #expect(options.changes == [
            "hides SEND_FUA, SEND_TRIM, SEND_WRITE_ZEROES, SEND_DF, SEND_RESIZE, SEND_FAST_ZERO, BLOCK_STATUS_PAYLOAD",
            "read-only: shows READ_ONLY, writes fail with EPERM",
            "refuses STRUCTURED_REPLY, LIST_META_CONTEXT, SET_META_CONTEXT, EXTENDED_HEADERS with ERR_UNSUP",
        ])
        #expect(EmulationOptions(zeroMode: .emulate, fastZeroMode: .slow).changes == ["zeromode=emulate fastzeromode=slow"])
        #expect(EmulationOptions(fastZeroMode: .ignore).changes == ["fastzeromode=ignore"])
        #expect(EmulationOptions(maskedHandshake: [.noZeroes]).changes == ["hides handshake flags NO_ZEROES"])
    }
}
