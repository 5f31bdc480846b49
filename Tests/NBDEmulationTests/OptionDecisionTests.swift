import NBDEmulation
import NBDProtocol
import Testing

/// Which options nbdtap refuses itself, and which it lets through.
@Suite struct OptionDecisionTests {
    static let allOptions: [NBDOption] = [.exportName, .abort, .list, .peekExport, .startTLS, .info, .go,
                                          .structuredReply, .listMetaContext, .setMetaContext, .extendedHeaders, .unknown(99)]

    func refused(_ options: EmulationOptions) -> [NBDOption] {
        Self.allOptions.filter { options.optionDecision($0) == .refuse(.errUnsup) }
    }

    @Test func transparentForwardsEverything() {
        for option in Self.allOptions { #expect(EmulationOptions.transparent.optionDecision(option) == .forward) }
    }

    @Test(arguments: [
        (RefusableOption.structuredReplies, [NBDOption.structuredReply, .listMetaContext, .setMetaContext, .extendedHeaders]),
        (.metaContexts, [.listMetaContext, .setMetaContext]),
        (.extendedHeaders, [.extendedHeaders]),
        (.go, [.info, .go, .extendedHeaders]),
        (.list, [.list]),
        (.tls, [.startTLS]),
    ])
    func eachRefusalWithItsImplications(_ refusal: RefusableOption, _ expected: [NBDOption]) {
        #expect(refused(EmulationOptions(refused: [refusal])) == expected)
    }

    @Test func otherOptionsAlwaysForwarded() {
        let all = EmulationOptions(refused: Set(RefusableOption.allCases))
        #expect(all.optionDecision(.exportName) == .forward)
        #expect(all.optionDecision(.abort) == .forward)
        #expect(all.optionDecision(.peekExport) == .forward)
        #expect(all.optionDecision(.unknown(99)) == .forward)
    }

    @Test func masksAndZeroModesRefuseNoOption() {
        let options = EmulationOptions(masked: Set(MaskFeature.allCases), readOnly: true, maskedHandshake: [.noZeroes],
                                       zeroMode: .emulate, fastZeroMode: .slow)
        #expect(refused(options) == [])
    }

    @Test func nonFixedNewstyleAcceptsOnlyExportName() {
        let options = EmulationOptions(maskedHandshake: [.fixedNewstyle])
        for option in Self.allOptions {
            #expect(options.optionDecision(option) == (option == .exportName ? .forward : .disconnect), "\(option.name)")
        }
    }

    @Test func oldstyleHasNoOptions() {
        let options = EmulationOptions(handshake: .oldstyle)
        for option in Self.allOptions { #expect(options.optionDecision(option) == .disconnect, "\(option.name)") }
    }
}
