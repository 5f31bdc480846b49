import NBDEmulation
import NBDProtocol
import Testing

/// Requests using something nbdtap hides get the answer a server without it gives, from
/// nbdtap; requests using something the upstream lacks too go to the upstream.
@Suite struct RequestAnswerTests {
    func decide(_ options: EmulationOptions, _ request: RequestHeader, upstream: TransmissionFlags = nbdkitFlags,
                structured: Bool = true) -> RequestDecision {
        let shown = options.shownFlags(upstream: upstream, structuredOrExtended: structured)
        return options.requestDecision(request, shown: shown, upstream: upstream, maxPayload: nil)
    }

    @Test func transparentForwardsEvenNonsense() {
        let nonsense = request(.writeZeroes, [.fastZero, .df, .reqOne], length: 1)
        #expect(decide(.transparent, nonsense, upstream: flags(0x0001)) == .forward(nonsense))
    }

    @Test(arguments: [NBDCommand.write, .trim, .writeZeroes, .resize])
    func writesOnReadOnlyAreEPERM(_ command: NBDCommand) {
        let options = EmulationOptions(readOnly: true)
        let upstream = nbdkitFlags.union(.sendResize)
        #expect(decide(options, request(command), upstream: upstream) == .answer(.eperm, .readOnly(command)))
    }

    @Test(arguments: [NBDCommand.read, .flush, .cache, .blockStatus, .disc])
    func readsOnReadOnlyGoThrough(_ command: NBDCommand) {
        let r = request(command)
        #expect(decide(EmulationOptions(readOnly: true), r) == .forward(r))
    }

    @Test func readOnlyUpstreamAnswersForItself() {
        let r = request(.write)
        #expect(decide(EmulationOptions(readOnly: true), r, upstream: flags(0x587)) == .forward(r))
    }

    /// nbdkit checks read-only before flags and commands, so a FUA write to a read-only
    /// export is EPERM even though FUA is hidden too.
    @Test func readOnlyComesFirst() {
        #expect(decide(EmulationOptions(masked: [.fua, .writeZeroes], readOnly: true), request(.writeZeroes, .fua)).answeredError == .eperm)
        #expect(decide(EmulationOptions(readOnly: true), request(.read, .fua)) == .answer(.einval, .hiddenFlag(.fua)))
    }

    @Test(arguments: [
        (MaskFeature.trim, NBDCommand.trim),
        (.flush, .flush),
        (.cache, .cache),
        (.writeZeroes, .writeZeroes),
    ])
    func maskedCommandsAreEINVAL(_ feature: MaskFeature, _ command: NBDCommand) {
        #expect(decide(EmulationOptions(masked: [feature]), request(command)) == .answer(.einval, .hiddenCommand(command)))
    }

    @Test(arguments: [
        (MaskFeature.fua, NBDCommand.write, CommandFlags.fua),
        (.fua, .read, .fua),  // FUA is valid on any command; nbdkit rejects it on all without SEND_FUA
        (.fua, .trim, .fua),
        (.df, .read, .df),
        (.fastZero, .writeZeroes, .fastZero),
        (.writeZeroes, .writeZeroes, .fastZero),
    ])
    func maskedFlagsAreEINVAL(_ feature: MaskFeature, _ command: NBDCommand, _ flag: CommandFlags) {
        let decision = decide(EmulationOptions(masked: [feature]), request(command, flag))
        #expect(decision.answeredError == .einval, "\(decision)")
    }

    @Test func blockStatusPayloadMaskedIsEINVAL() {
        let upstream = everyFeature
        let options = EmulationOptions(masked: [.blockStatusPayload])
        let filtered = request(.blockStatus, .payloadLen, length: 12, extended: true)
        #expect(decide(options, filtered, upstream: upstream) == .answer(.einval, .hiddenFlag(.payloadLen)))
        #expect(filtered.payloadLength == 12, "the payload the proxy must still consume")
        let plain = request(.blockStatus, extended: true)
        #expect(decide(options, plain, upstream: upstream) == .forward(plain))
    }

    @Test func dfWithoutStructuredRepliesIsTheUpstreamsBusiness() {
        // Without structured replies neither side shows DF; nbdtap changed nothing.
        let r = request(.read, .df)
        #expect(decide(EmulationOptions(masked: [.trim]), r, upstream: flags(0xd6d), structured: false) == .forward(r))
    }

    @Test func unadvertisedByBothIsForwarded() {
        let upstream = flags(0x016d)  // nbd-server: no cache, no fast zero
        let options = EmulationOptions(masked: [.cache, .fastZero])
        for r in [request(.cache), request(.writeZeroes, .fastZero)] {
            #expect(decide(options, r, upstream: upstream, structured: false) == .forward(r))
        }
    }

    @Test func masksLeaveOtherRequestsAlone() {
        let options = EmulationOptions(masked: [.trim, .cache])
        for r in [request(.read), request(.write, .fua), request(.flush), request(.writeZeroes, [.noHole, .fua]),
                  request(.blockStatus, .reqOne), request(.disc, length: 0), request(.unknown(42))] {
            #expect(decide(options, r) == .forward(r), "\(r.command.name)")
        }
    }

    @Test func reasonsReadWell() {
        #expect(AnswerReason.readOnly(.write).description == "WRITE on an export nbdtap shows read-only")
        #expect(AnswerReason.hiddenFlag(.fastZero).description == "FAST_ZERO not advertised by nbdtap")
        #expect(AnswerReason.hiddenCommand(.trim).description == "TRIM not advertised by nbdtap")
        #expect(AnswerReason.fastZeroSlow.description == "fast zero refused (fastzeromode=slow)")
    }
}
