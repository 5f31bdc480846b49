import NBDProtocol
import Testing
@testable import NBDReplay

@Suite struct OutcomeComparisonTests {
    func bs(_ pairs: [(UInt64, UInt64)]) -> [BlockDescriptor] { pairs.map { BlockDescriptor(length: $0.0, status: $0.1) } }
    func ok(_ extents: [String: [BlockDescriptor]]) -> ReplyOutcome { ReplyOutcome(status: .replied(.ok), extents: extents) }

    /// Two servers may cut the same allocation map into different extents.
    @Test func extentsCutDifferentlyMatch() {
        let a = ok(["base:allocation": bs([(4096, 0), (4096, 0), (8192, 3)])])
        let b = ok(["base:allocation": bs([(8192, 0), (4096, 3), (4096, 3), (65536, 3)])])
        #expect(OutcomeComparison.compare(recorded: a, replayed: b, effectLength: 16384) == .match)
    }

    /// The spec lets a server describe less than was asked: compared where both describe.
    @Test func shorterAnswerIsComparedWhereBothDescribe() {
        let a = ok(["base:allocation": bs([(65536, 0)])])
        let b = ok(["base:allocation": bs([(16384, 0)])])
        #expect(OutcomeComparison.compare(recorded: a, replayed: b, effectLength: 65536) == .match)
        let c = ok(["base:allocation": bs([(8192, 0), (8192, 3)])])
        guard case .differ = OutcomeComparison.compare(recorded: a, replayed: c, effectLength: 65536) else {
            Issue.record("a hole reported as data matched"); return
        }
    }

    @Test func missingContextDiffers() {
        let a = ok(["base:allocation": bs([(4096, 0)]), "qemu:allocation-depth": bs([(4096, 1)])])
        let b = ok(["base:allocation": bs([(4096, 0)])])
        guard case .differ = OutcomeComparison.compare(recorded: a, replayed: b, effectLength: 4096) else {
            Issue.record("a context missing from the replay matched"); return
        }
    }

    @Test func statusAndErrno() {
        let eio = ReplyOutcome(status: .replied(.eio)), ok = ReplyOutcome(status: .replied(.ok))
        #expect(OutcomeComparison.compare(recorded: eio, replayed: eio, effectLength: 0) == .match)
        #expect(OutcomeComparison.compare(recorded: eio, replayed: ok, effectLength: 0)
            == .differ(recorded: "return=-1 error=EIO", replayed: "return=0"))
        #expect(OutcomeComparison.compare(recorded: ReplyOutcome(status: .replied(.einval)), replayed: eio, effectLength: 0)
            == .differ(recorded: "return=-1 error=EINVAL", replayed: "return=-1 error=EIO"))
        guard case .notCompared = OutcomeComparison.compare(recorded: ReplyOutcome(status: .abandoned), replayed: ok, effectLength: 0) else {
            Issue.record("a request the capture has no reply for was compared"); return
        }
        guard case .differ = OutcomeComparison.compare(recorded: ok, replayed: ReplyOutcome(status: .abandoned), effectLength: 0) else {
            Issue.record("an unanswered replay matched"); return
        }
    }
}
