import NBDEmulation
import NBDProtocol
import Testing

/// The profile list itself, and the historical profiles (which no installed tool measures).
@Suite struct ProfileListTests {
    @Test func namesAreUniqueAndLookupWorks() {
        let names = Profile.all.map(\.name)
        #expect(names == ["nbd-server-3.24", "nbdkit-1.32", "qemu-nbd-7.2", "pre-extended-headers", "pre-fast-zero", "pre-structured-replies", "oldstyle"])
        #expect(Set(names).count == names.count)
        for profile in Profile.all {
            #expect(Profile.named(profile.name) == profile)
            #expect(!profile.summary.isEmpty && !profile.sources.isEmpty)
            #expect(!profile.options.isTransparent)
        }
        #expect(Profile.named("nbdkit") == nil)
    }

    @Test func preFastZeroHidesOnlyFastZeroAndLater() {
        let options = Profile.preFastZero.options
        #expect(options.shownFlags(upstream: everyFeature, structuredOrExtended: true) == everyFeature.subtracting([.sendFastZero, .blockStatusPayload]))
        #expect(options.optionDecision(.structuredReply) == .forward)
        #expect(options.optionDecision(.setMetaContext) == .forward)
        #expect(options.optionDecision(.extendedHeaders) == .refuse(.errUnsup))
        let shown = options.shownFlags(upstream: nbdkitFlags, structuredOrExtended: true)
        #expect(options.requestDecision(request(.writeZeroes, .fastZero), shown: shown, upstream: nbdkitFlags, maxPayload: nil)
                == .answer(.einval, .hiddenFlag(.fastZero)))
    }

    @Test func preExtendedHeadersRefusesOnlyExtendedHeaders() {
        let options = Profile.preExtendedHeaders.options
        #expect(options.shownFlags(upstream: everyFeature, structuredOrExtended: true) == everyFeature.subtracting([.blockStatusPayload]))
        for option in [NBDOption.structuredReply, .setMetaContext, .listMetaContext, .go, .info] {
            #expect(options.optionDecision(option) == .forward)
        }
        #expect(options.optionDecision(.extendedHeaders) == .refuse(.errUnsup))
    }

    @Test func preStructuredRepliesKeepsWriteZeroesMultiConnAndGo() {
        let options = Profile.preStructuredReplies.options
        #expect(options.shownFlags(upstream: everyFeature, structuredOrExtended: true)
                == [.hasFlags, .sendFlush, .sendFUA, .rotational, .sendTrim, .sendWriteZeroes, .canMultiConn])
        for option in [NBDOption.structuredReply, .listMetaContext, .setMetaContext, .extendedHeaders] {
            #expect(options.optionDecision(option) == .refuse(.errUnsup), "\(option.name)")
        }
        for option in [NBDOption.info, .go, .list, .startTLS] {
            #expect(options.optionDecision(option) == .forward, "\(option.name)")
        }
    }

    @Test func oldstyleHasNoNegotiationAndOldFlags() {
        let options = Profile.oldstyle.options
        #expect(options.handshake == .oldstyle)
        #expect(options.shownFlags(upstream: everyFeature, structuredOrExtended: false)
                == [.hasFlags, .sendFlush, .sendFUA, .rotational, .sendTrim])
        #expect(options.optionDecision(.exportName) == .disconnect)
    }

    @Test func listingShowsChangesEquivalentOptionsAndSources() {
        #expect(Profile.nbdServer.listing == """
            nbd-server-3.24: the reference server as Debian 12 ships it: simple replies only, no cache, fast zero or block status
                hides SEND_DF, SEND_CACHE, SEND_FAST_ZERO, BLOCK_STATUS_PAYLOAD
                refuses STRUCTURED_REPLY, LIST_META_CONTEXT, SET_META_CONTEXT, EXTENDED_HEADERS with ERR_UNSUP
                equivalent to: --mask df,cache,fast-zero,block-status-payload --no-structured-replies --no-meta-contexts --no-extended-headers
                source: nbd-server 3.24: \(Profile.nbdServer.sources[0].method)
            """)
        #expect(Profile.oldstyle.options.changes == [
            "hides SEND_WRITE_ZEROES, SEND_DF, CAN_MULTI_CONN, SEND_CACHE, SEND_FAST_ZERO, BLOCK_STATUS_PAYLOAD",
            "oldstyle greeting (no options)",
        ])
    }
}
