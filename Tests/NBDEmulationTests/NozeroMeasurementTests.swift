import NBDEmulation
import NBDProtocol
import Testing

/// nbdtap's zero modes against nbdkit 1.32.5's nozero filter as measured by
/// Fixtures/measure-nozero.py: for 3 upstream "plugins" × 4 zeromodes × 4 fastzeromodes,
/// the flags nbdkit showed and what became of four WRITE_ZEROES requests.
@Suite struct NozeroMeasurementTests {
    static let fixture = try! NozeroFixture.load()

    /// The upstream each plugin stands for, as a proxy would see it. nbdkit's core emulates
    /// write zeroes for any writable plugin, so "no-zero" shows them under every zeromode
    /// but none; an NBD upstream without them is the `zeromode=none` row.
    static func upstream(_ plugin: String) throws -> TransmissionFlags {
        let row: String
        switch plugin {
        case "no-zero": row = "no-zero zeromode=none fastzeromode=default"
        default: row = "\(plugin) zeromode=plugin fastzeromode=default"
        }
        return flags(try hexFlags(fixture.results[row]?.eflags))
    }

    static var keys: [String] { fixture.results.keys.sorted() }

    @Test func fixtureIsTheWholeMatrix() {
        #expect(Self.fixture.results.count == 3 * 4 * 4)
        #expect(Self.fixture.version == "nbdkit 1.32.5")
        #expect(Self.fixture.serverCommand.contains("--filter=nozero eval"))
    }

    @Test(arguments: keys)
    func measuredCombination(_ key: String) throws {
        let parts = key.split(separator: " ")
        let plugin = String(parts[0])
        let zero = try #require(ZeroMode(argument: String(parts[1].dropFirst("zeromode=".count))))
        let fast = try #require(FastZeroMode(argument: String(parts[2].dropFirst("fastzeromode=".count))))
        let result = try #require(Self.fixture.results[key])
        let options = EmulationOptions(zeroMode: zero, fastZeroMode: fast)
        let upstream = try Self.upstream(plugin)

        let shown = options.shownFlags(upstream: upstream, structuredOrExtended: true)
        #expect(shown == flags(try hexFlags(result.eflags)), "shown \(shown.names)")

        for spec in Self.fixture.requests {
            let outcome = try #require(result.requests[spec.name])
            let r = request(.writeZeroes, CommandFlags(rawValue: spec.flags), offset: spec.offset, length: spec.count)
            let decision = options.requestDecision(r, shown: shown, upstream: upstream, maxPayload: nil)
            if fast == .ignore && options.emulatesZeroes(upstream: upstream) && r.flags.contains(.fastZero) && shown.contains(.sendFastZero) {
                // The one deliberate difference from nbdkit 1.32 (RequestPolicy): ignore
                // strips the flag and the zero is written instead of failing.
                #expect(decision.zeroWrites != nil, "\(key) \(spec.name): \(decision)")
                continue
            }
            check(decision, against: outcome, request: r, upstream: upstream, emulating: options.emulatesZeroes(upstream: upstream),
                  comment: "\(key) \(spec.name)")
        }
    }

    /// One measured answer: OK with `zero` calls ⇒ forwarded with the flags the plugin saw;
    /// OK with `pwrite` calls ⇒ emulated over the same range with the same FUA; an error ⇒
    /// the same error from nbdtap (or from an upstream that lacks write zeroes itself);
    /// nbdkit aborting (FAST_ZERO it did not advertise) ⇒ EINVAL where nbdtap hid or
    /// emulates it, else forwarded for the upstream to judge.
    func check(_ decision: RequestDecision, against outcome: NozeroFixture.Outcome, request r: RequestHeader,
               upstream: TransmissionFlags, emulating: Bool, comment: Comment) {
        let calls = outcome.pluginCalls
        switch outcome.answer {
        case "OK" where calls.first?.hasPrefix("zero ") == true:
            var expected: CommandFlags = []
            let seen = calls[0].split(separator: " ").dropFirst(3).first.map { $0.split(separator: ",").map(String.init) } ?? []
            if seen.contains("fua") { expected.insert(.fua) }
            if !seen.contains("may_trim") { expected.insert(.noHole) }
            if seen.contains("fast") { expected.insert(.fastZero) }
            var header = r
            header.flags = expected
            #expect(decision == .forward(header), comment)
        case "OK":
            guard let writes = decision.zeroWrites else {
                Issue.record("expected emulation, got \(decision): \(comment)")
                return
            }
            let measuredFUA = calls.allSatisfy { $0.hasSuffix(" fua") }
            #expect(calls.allSatisfy { $0.hasPrefix("pwrite ") }, comment)
            #expect(writes.reduce(0) { $0 + UInt64($1.length) } == r.length, comment)
            #expect(writes.first?.offset == r.offset, comment)
            #expect(writes.allSatisfy { $0.fua == measuredFUA }, comment)
        case "EINVAL":
            if upstream.contains(.sendWriteZeroes) {
                #expect(decision.answeredError == .einval, comment)
            } else {
                #expect(decision == .forward(r), comment)
            }
        case "ENOTSUP":
            #expect(decision.answeredError == .enotsup, comment)
        case let answer where answer.hasPrefix("ENOTCONN"):
            if emulating || upstream.contains(.sendFastZero) {
                #expect(decision == .answer(.einval, .hiddenFlag(.fastZero)), comment)
            } else {
                #expect(decision.forwarded?.flags.contains(.fastZero) == true, comment)
            }
        default:
            Issue.record("unexpected measured answer \(outcome.answer): \(comment)")
        }
    }
}
