import NBDEmulation
import NBDProtocol
import Testing

/// nbdkit's nozero filter table (Docs/emulation.md, from nbdkit-formats.md), row by row:
/// what is advertised and what becomes of a zero request without and with FAST_ZERO.
@Suite struct NozeroTableTests {
    enum Outcome: Equatable, CustomStringConvertible {
        /// Forwarded with exactly these flags.
        case forward(CommandFlags)
        /// Served by writing zeroes.
        case emulate
        /// Answered by nbdtap.
        case answer(ErrorValue)

        var description: String {
            switch self {
            case .forward(let f): return "forward[\(f.names.joined(separator: "|"))]"
            case .emulate: return "emulate"
            case .answer(let e): return e.name
            }
        }
    }

    struct Row: CustomTestStringConvertible, Sendable {
        let zero: ZeroMode
        let fast: FastZeroMode
        let upstream: UInt16
        let shown: UInt16
        let plain: Outcome
        let fastZero: Outcome
        var testDescription: String { "zeromode=\(zero.rawValue) fastzeromode=\(fast.rawValue) upstream=0x\(String(upstream, radix: 16))" }
    }

    /// Upstream 0x8ed: write zeroes and fast zero (HAS_FLAGS|FLUSH|FUA|TRIM|WRITE_ZEROES|DF|FAST_ZERO).
    /// Upstream 0x0ed: write zeroes, no fast zero. Shown 0xad lacks both, 0xed lacks fast zero.
    static let rows: [Row] = [
        // none: not advertised whatever fastzeromode says; nbdkit answers EINVAL, so does nbdtap.
        Row(zero: .none, fast: .none, upstream: 0x8ed, shown: 0x0ad, plain: .answer(.einval), fastZero: .answer(.einval)),
        Row(zero: .none, fast: .slow, upstream: 0x8ed, shown: 0x0ad, plain: .answer(.einval), fastZero: .answer(.einval)),
        Row(zero: .none, fast: .ignore, upstream: 0x8ed, shown: 0x0ad, plain: .answer(.einval), fastZero: .answer(.einval)),
        Row(zero: .none, fast: .default, upstream: 0x8ed, shown: 0x0ad, plain: .answer(.einval), fastZero: .answer(.einval)),
        // emulate: advertised; zeroes written; fast zeroes fail at once, except with ignore,
        // which strips the flag so they are written too (the 2019 filter; nbdkit 1.32 fails them).
        Row(zero: .emulate, fast: .default, upstream: 0x8ed, shown: 0x8ed, plain: .emulate, fastZero: .answer(.enotsup)),
        Row(zero: .emulate, fast: .slow, upstream: 0x8ed, shown: 0x8ed, plain: .emulate, fastZero: .answer(.enotsup)),
        Row(zero: .emulate, fast: .ignore, upstream: 0x8ed, shown: 0x8ed, plain: .emulate, fastZero: .emulate),
        // emulate + none: fast zero not advertised. nbdkit aborts; the spec says EINVAL.
        Row(zero: .emulate, fast: .none, upstream: 0x8ed, shown: 0x0ed, plain: .emulate, fastZero: .answer(.einval)),
        // notrim: forwarded with NO_HOLE; fast zero per fastzeromode.
        Row(zero: .notrim, fast: .default, upstream: 0x8ed, shown: 0x8ed, plain: .forward(.noHole), fastZero: .forward([.noHole, .fastZero])),
        Row(zero: .notrim, fast: .slow, upstream: 0x8ed, shown: 0x8ed, plain: .forward(.noHole), fastZero: .answer(.enotsup)),
        Row(zero: .notrim, fast: .ignore, upstream: 0x8ed, shown: 0x8ed, plain: .forward(.noHole), fastZero: .forward(.noHole)),
        Row(zero: .notrim, fast: .none, upstream: 0x8ed, shown: 0x0ed, plain: .forward(.noHole), fastZero: .answer(.einval)),
        // plugin: forwarded unchanged; fast zero per fastzeromode.
        Row(zero: .plugin, fast: .default, upstream: 0x8ed, shown: 0x8ed, plain: .forward([]), fastZero: .forward(.fastZero)),
        Row(zero: .plugin, fast: .slow, upstream: 0x8ed, shown: 0x8ed, plain: .forward([]), fastZero: .answer(.enotsup)),
        Row(zero: .plugin, fast: .ignore, upstream: 0x8ed, shown: 0x8ed, plain: .forward([]), fastZero: .forward([])),
        Row(zero: .plugin, fast: .none, upstream: 0x8ed, shown: 0x0ed, plain: .forward([]), fastZero: .answer(.einval)),
        // An upstream without fast zero: "plugin's" is then none, and slow and ignore
        // advertise a fast zero the upstream never had.
        Row(zero: .notrim, fast: .default, upstream: 0x0ed, shown: 0x0ed, plain: .forward(.noHole), fastZero: .forward([.noHole, .fastZero])),
        Row(zero: .notrim, fast: .slow, upstream: 0x0ed, shown: 0x8ed, plain: .forward(.noHole), fastZero: .answer(.enotsup)),
        Row(zero: .notrim, fast: .ignore, upstream: 0x0ed, shown: 0x8ed, plain: .forward(.noHole), fastZero: .forward(.noHole)),
        Row(zero: .notrim, fast: .none, upstream: 0x0ed, shown: 0x0ed, plain: .forward(.noHole), fastZero: .forward([.noHole, .fastZero])),
        Row(zero: .plugin, fast: .default, upstream: 0x0ed, shown: 0x0ed, plain: .forward([]), fastZero: .forward(.fastZero)),
        Row(zero: .plugin, fast: .slow, upstream: 0x0ed, shown: 0x8ed, plain: .forward([]), fastZero: .answer(.enotsup)),
        Row(zero: .plugin, fast: .ignore, upstream: 0x0ed, shown: 0x8ed, plain: .forward([]), fastZero: .forward([])),
        Row(zero: .plugin, fast: .none, upstream: 0x0ed, shown: 0x0ed, plain: .forward([]), fastZero: .forward(.fastZero)),
        Row(zero: .emulate, fast: .default, upstream: 0x0ed, shown: 0x8ed, plain: .emulate, fastZero: .answer(.enotsup)),
        // An upstream without write zeroes: notrim and plugin emulate, as nbdkit's core does.
        Row(zero: .notrim, fast: .default, upstream: 0x0ad, shown: 0x0ed, plain: .emulate, fastZero: .answer(.einval)),
        Row(zero: .plugin, fast: .slow, upstream: 0x0ad, shown: 0x8ed, plain: .emulate, fastZero: .answer(.enotsup)),
        Row(zero: .plugin, fast: .ignore, upstream: 0x0ad, shown: 0x8ed, plain: .emulate, fastZero: .emulate),
        // nbdtap's default, passthrough: write zeroes as the upstream has them.
        Row(zero: .passthrough, fast: .slow, upstream: 0x8ed, shown: 0x8ed, plain: .forward([]), fastZero: .answer(.enotsup)),
        Row(zero: .passthrough, fast: .ignore, upstream: 0x0ed, shown: 0x8ed, plain: .forward([]), fastZero: .forward([])),
        Row(zero: .passthrough, fast: .none, upstream: 0x8ed, shown: 0x0ed, plain: .forward([]), fastZero: .answer(.einval)),
        Row(zero: .passthrough, fast: .slow, upstream: 0x0ad, shown: 0x0ad, plain: .forward([]), fastZero: .forward(.fastZero)),
    ]

    static func outcome(_ decision: RequestDecision) -> Outcome {
        switch decision {
        case .forward(let header): return .forward(header.flags)
        case .emulateZero: return .emulate
        case .answer(let error, _): return .answer(error)
        }
    }

    @Test(arguments: rows)
    func row(_ row: Row) {
        let options = EmulationOptions(zeroMode: row.zero, fastZeroMode: row.fast)
        let upstream = flags(row.upstream)
        let shown = options.shownFlags(upstream: upstream, structuredOrExtended: true)
        #expect(shown == flags(row.shown), "shown \(shown.names)")
        let plain = options.requestDecision(request(.writeZeroes, length: 65536), shown: shown, upstream: upstream, maxPayload: nil)
        #expect(Self.outcome(plain) == row.plain)
        let fast = options.requestDecision(request(.writeZeroes, .fastZero, length: 65536), shown: shown, upstream: upstream, maxPayload: nil)
        #expect(Self.outcome(fast) == row.fastZero)
    }

    /// Every zeromode × fastzeromode pair appears in the table for a full-featured upstream.
    @Test func tableCoversEveryCombination() {
        for zero in ZeroMode.arguments {
            for fast in FastZeroMode.allCases {
                #expect(Self.rows.contains { $0.zero == zero && $0.fast == fast && $0.upstream == 0x8ed }, "\(zero) \(fast)")
            }
        }
    }

    /// Read-only: nozero has no effect, and writes are EPERM.
    @Test(arguments: ZeroMode.allCases)
    func readOnlyUpstreamIsLeftAlone(_ zero: ZeroMode) {
        let options = EmulationOptions(zeroMode: zero, fastZeroMode: .slow)
        #expect(options.shownFlags(upstream: flags(0x587), structuredOrExtended: true) == flags(0x587))
        let forced = EmulationOptions(readOnly: true, zeroMode: zero, fastZeroMode: .slow)
        let shown = forced.shownFlags(upstream: nbdkitFlags, structuredOrExtended: true)
        #expect(shown == flags(0x587))
        #expect(forced.requestDecision(request(.writeZeroes, .fastZero), shown: shown, upstream: nbdkitFlags, maxPayload: nil).answeredError == .eperm)
    }

    @Test func masksOverrideZeroModes() {
        let options = EmulationOptions(masked: [.fastZero], zeroMode: .emulate, fastZeroMode: .slow)
        let shown = options.shownFlags(upstream: nbdkitFlags, structuredOrExtended: true)
        #expect(shown == flags(0x5ed))
        #expect(options.requestDecision(request(.writeZeroes, .fastZero), shown: shown, upstream: nbdkitFlags, maxPayload: nil)
                == .answer(.einval, .hiddenFlag(.fastZero)))
        let noZero = EmulationOptions(masked: [.writeZeroes], zeroMode: .emulate)
        let shownNoZero = noZero.shownFlags(upstream: nbdkitFlags, structuredOrExtended: true)
        #expect(noZero.requestDecision(request(.writeZeroes), shown: shownNoZero, upstream: nbdkitFlags, maxPayload: nil)
                == .answer(.einval, .hiddenCommand(.writeZeroes)))
    }
}
