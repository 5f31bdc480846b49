import NBDEmulation
import NBDProtocol
import Testing

/// Emulated WRITE_ZEROES: the WRITEs of zeroes that replace it.
@Suite struct ZeroSplitTests {
    let options = EmulationOptions(zeroMode: .emulate)
    let upstream = flags(0x002d)  // HAS_FLAGS|FLUSH|FUA|TRIM: no write zeroes at all

    func writes(_ r: RequestHeader, maxPayload: UInt32? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> [ZeroWrite] {
        let shown = options.shownFlags(upstream: upstream, structuredOrExtended: false)
        let decision = options.requestDecision(r, shown: shown, upstream: upstream, maxPayload: maxPayload)
        return Array(try #require(decision.zeroWrites, "\(decision)", sourceLocation: sourceLocation))
    }

    static let mib: UInt64 = 1 << 20

    /// Checked against the export size before any piece is written: ENOSPC, as nbdkit.
    @Test func rangePastTheEndIsRefusedWhole() {
        let shown = options.shownFlags(upstream: upstream, structuredOrExtended: false)
        for (offset, length) in [(UInt64(0), 2 * Self.mib), (Self.mib, 1), (2 * Self.mib, 0)] {
            #expect(options.requestDecision(request(.writeZeroes, offset: offset, length: length), shown: shown, upstream: upstream,
                                            maxPayload: nil, exportSize: Self.mib) == .answer(.enospc, .beyondExport(size: Self.mib)))
        }
        #expect(options.requestDecision(request(.writeZeroes, offset: Self.mib - 512, length: 512), shown: shown, upstream: upstream,
                                        maxPayload: nil, exportSize: Self.mib).zeroWrites?.count == 1)
    }

    @Test func advertisedEvenThoughUpstreamHasNone() {
        #expect(options.shownFlags(upstream: upstream, structuredOrExtended: false) == flags(0x086d))
    }

    @Test func smallRequestIsOneWrite() throws {
        #expect(try writes(request(.writeZeroes, offset: 4096, length: 65536)) == [ZeroWrite(offset: 4096, length: 65536, fua: false)])
    }

    @Test func exactlyOnePiece() throws {
        #expect(try writes(request(.writeZeroes, length: 32 * Self.mib)) == [ZeroWrite(offset: 0, length: 32 << 20, fua: false)])
    }

    @Test func oneByteOverAPiece() throws {
        #expect(try writes(request(.writeZeroes, offset: 512, length: 32 * Self.mib + 1)) == [
            ZeroWrite(offset: 512, length: 32 << 20, fua: false),
            ZeroWrite(offset: 512 + 32 * Self.mib, length: 1, fua: false),
        ])
    }

    @Test func oneByteUnderTwoPieces() throws {
        let w = try writes(request(.writeZeroes, length: 64 * Self.mib - 1))
        #expect(w.map(\.length) == [32 << 20, (32 << 20) - 1])
    }

    @Test func splitByUpstreamMaximumPayload() throws {
        let w = try writes(request(.writeZeroes, offset: 1 << 20, length: 10 * 65536 + 4096), maxPayload: 65536)
        #expect(w.count == 11)
        #expect(w.dropLast().allSatisfy { $0.length == 65536 })
        #expect(w.last == ZeroWrite(offset: (1 << 20) + 10 * 65536, length: 4096, fua: false))
        #expect(zip(w, w.dropFirst()).allSatisfy { $0.offset + UInt64($0.length) == $1.offset }, "contiguous")
    }

    /// FUA covers only the write that carries it, so every piece carries it; nbdkit 1.32
    /// does the same with native FUA (nozero.json: both pwrites of `zero FUA 100MiB` say fua).
    @Test func fuaOnEveryPieceWhenAsked() throws {
        let w = try writes(request(.writeZeroes, .fua, length: 100 * Self.mib))
        #expect(w.map(\.length) == [32 << 20, 32 << 20, 32 << 20, 4 << 20])
        #expect(w.allSatisfy { $0.fua })
        #expect(try writes(request(.writeZeroes, length: 100 * Self.mib)).allSatisfy { !$0.fua })
    }

    @Test func noHoleIsIrrelevantToWritingZeroes() throws {
        #expect(try writes(request(.writeZeroes, .noHole, length: 8192)) == [ZeroWrite(offset: 0, length: 8192, fua: false)])
    }

    /// Nothing to write: the proxy answers success at once (nbdkit's loop writes nothing).
    @Test func zeroLengthIsNoWrites() throws {
        #expect(try writes(request(.writeZeroes, offset: 4096, length: 0)) == [])
        #expect(try writes(request(.writeZeroes, .fua, length: 0)) == [])
    }

    @Test(arguments: [
        (nil, 32 << 20),
        (65536, 65536),
        (64 << 20, 32 << 20),       // never above 32 MiB, however much the upstream takes
        (0xffff_ffff, 32 << 20),    // "no limit"
        (1, 512),                   // below the spec's floor
        (0, 512),
    ] as [(UInt32?, UInt32)])
    func pieceLength(_ maxPayload: UInt32?, _ expected: UInt32) {
        #expect(ZeroWrites.pieceLength(maxPayload: maxPayload) == expected)
    }

    /// An extended request can ask for nearly 2^64 bytes; the pieces are computed, never stored.
    @Test func hugeExtendedRequestIsLazy() throws {
        let r = request(.writeZeroes, offset: 0, length: 1 << 62, extended: true)
        let shown = options.shownFlags(upstream: upstream, structuredOrExtended: true)
        let plan = try #require(options.requestDecision(r, shown: shown, upstream: upstream, maxPayload: nil).zeroWrites)
        #expect(plan.count == 1 << 37)
        #expect(plan.last == ZeroWrite(offset: (1 << 62) - (32 << 20), length: 32 << 20, fua: false))
    }

    @Test func rangePastTwoToTheSixtyFourIsENOSPC() {
        let r = request(.writeZeroes, offset: UInt64.max - 100, length: 200, extended: true)
        let shown = options.shownFlags(upstream: upstream, structuredOrExtended: true)
        #expect(options.requestDecision(r, shown: shown, upstream: upstream, maxPayload: nil) == .answer(.enospc, .beyondAddressSpace))
        #expect(ZeroWrites(offset: UInt64.max, length: 1, maxPayload: nil, fua: false) == nil)
        #expect(ZeroWrites(offset: UInt64.max, length: 0, maxPayload: nil, fua: false)?.isEmpty == true)
    }

    @Test func emulatedZeroValidatesLikeAServer() {
        let shown = options.shownFlags(upstream: upstream, structuredOrExtended: false)
        func decide(_ f: CommandFlags) -> RequestDecision {
            options.requestDecision(request(.writeZeroes, f), shown: shown, upstream: upstream, maxPayload: nil)
        }
        #expect(decide(.df) == .answer(.einval, .invalidFlags(.df)))
        #expect(decide([.reqOne, .fua]) == .answer(.einval, .invalidFlags(.reqOne)))
        #expect(decide(.payloadLen) == .answer(.einval, .invalidFlags(.payloadLen)))
        #expect(decide(.fastZero) == .answer(.enotsup, .fastZeroEmulated))
        // FUA not shown (upstream without FUA): nbdtap is the server, so EINVAL.
        let noFUA = flags(0x0025)
        let shownNoFUA = options.shownFlags(upstream: noFUA, structuredOrExtended: false)
        #expect(options.requestDecision(request(.writeZeroes, .fua), shown: shownNoFUA, upstream: noFUA, maxPayload: nil)
                == .answer(.einval, .hiddenFlag(.fua)))
    }
}
