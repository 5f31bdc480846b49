import NBDEmulation
import NBDProtocol
import Testing

/// What the chain plans for one request, layer by layer, in nbdkit's stacking semantics
/// (nbdkit-filter(3): the first filter is nearest the client; a filter that answers a
/// request keeps it from the filters and plugin below; calls a filter makes go through
/// the filters below it).
struct PolicyChainTests {
    static let all: TransmissionFlags = [.hasFlags, .sendFlush, .sendFUA, .sendTrim, .sendWriteZeroes, .sendFastZero, .sendCache]

    func context(_ command: NBDCommand, offset: UInt64 = 0, length: UInt64 = 4096, exists: Set<String> = [],
                 contexts: [UInt32] = [1], filter: [UInt32]? = nil) -> RequestContext {
        RequestContext(header: RequestHeader(flags: [], command: command, cookie: 7, offset: offset, length: length),
                       id: 1, shown: Self.all, upstream: Self.all, upstreamMaxPayload: 32 << 20, exportSize: 64 << 20,
                       metaContexts: contexts, contextFilter: filter, fileExists: { exists.contains($0) })
    }

    func chain(_ args: String...) throws -> PolicyChain { try PolicyChain(arguments: args) }

    @Test func delayCountsOncePerPieceAfterMaxPayload() throws {
        // nbdkit's blocksize filter sends its pieces one after another, each through the
        // delay filter below it: a 1 MiB write in 256 KiB pieces waits 4 x 20 ms.
        var c = try chain("--max-payload", "256k", "--delay", "write=20ms")
        let p = c.request(context(.write, length: 1 << 20))
        #expect(p.pieces == 4 && p.maxPiece == 256 << 10 && p.delay == 80_000_000)
        // Above the split, the delay sees the client's one request.
        var above = try chain("--delay", "write=20ms", "--max-payload", "256k")
        #expect(above.request(context(.write, length: 1 << 20)).delay == 20_000_000)
        // Commands not named are not delayed; short requests are not split.
        #expect(c.request(context(.read, length: 4096)).delay == 0)
        #expect(c.request(context(.write, length: 4096)).pieces == 1)
    }

    /// nbdkit's server refuses READs and WRITEs over 64 MiB before any filter; nbdtap does
    /// not split them either (the pieces' memory would follow the client's length).
    @Test func maxPayloadDoesNotSplitPast64MiB() throws {
        var c = try chain("--max-payload", "512")
        #expect(c.request(context(.write, length: 64 << 20)).pieces == 131_072)
        #expect(c.request(context(.read, length: (64 << 20) + 1)).outcome
                == .answer(.einval, reason: "longer than 64 MiB, which --max-payload does not split", layer: "max-payload"))
        // A range past 2^64 goes upstream whole, for the upstream to refuse.
        #expect(c.request(context(.read, offset: .max - 4096, length: 1 << 20)).pieces == 1)
        // Other commands are not its business.
        #expect(c.request(context(.trim, length: 1 << 30)).outcome == .forward)
    }

    @Test func emulatedZeroesAreWritesToTheLayersBelow() throws {
        // nozero's emulation (zeromode=emulate) turns a zero into pwrites, which the delay
        // and error filters below see as writes.
        var delayed = try chain("--zeromode", "emulate", "--max-payload", "256k", "--delay", "write=20ms,zero=5ms")
        let p = delayed.request(context(.writeZeroes, length: 1 << 20))
        guard case .emulateZero(let writes) = p.outcome else { Issue.record("\(p)"); return }
        #expect(writes.count == 4 && p.delay == 80_000_000)
        var failing = try chain("--zeromode", "emulate", "--error", "write=EIO")
        #expect(failing.request(context(.writeZeroes)).outcome == .answer(.eio, reason: "injected (--error)", layer: "error"))
        // The error rule above the emulation sees a zero, not a write: it passes.
        var above = try chain("--error", "write=EIO", "--zeromode", "emulate")
        guard case .emulateZero = above.request(context(.writeZeroes)).outcome else { Issue.record("not emulated"); return }
    }

    @Test func aLayerThatAnswersHidesTheRequestFromTheLayersAfterIt() throws {
        var extentsFirst = try chain("--no-extents", "--error", "extents=EIO")
        #expect(extentsFirst.request(context(.blockStatus, length: 1 << 20)).outcome == .answerAllData(contexts: [1], length: 1 << 20))
        var errorFirst = try chain("--error", "extents=EIO", "--no-extents")
        #expect(errorFirst.request(context(.blockStatus)).outcome == .answer(.eio, reason: "injected (--error)", layer: "error"))
        // The first rule that fires wins.
        var two = try chain("--error", "write=ENOSPC", "--error", "write=EIO")
        #expect(two.request(context(.write)).outcome == .answer(.enospc, reason: "injected (--error)", layer: "error"))
    }

    @Test func noExtentsAnswersOnlyWhatTheUpstreamWouldAccept() throws {
        var c = try chain("--no-extents")
        // Clipped to the export's end (64 MiB), every context asked about, a payload's subset.
        #expect(c.request(context(.blockStatus, offset: 63 << 20, length: 4 << 20, contexts: [1, 2])).outcome
                == .answerAllData(contexts: [1, 2], length: 1 << 20))
        #expect(c.request(context(.blockStatus, contexts: [1, 2], filter: [2])).outcome == .answerAllData(contexts: [2], length: 4096))
        // No context chosen, zero length, past the end, an id never chosen: upstream's answer.
        for ctx in [context(.blockStatus, contexts: []), context(.blockStatus, length: 0), context(.blockStatus, offset: 64 << 20),
                    context(.blockStatus, filter: [5])] {
            #expect(c.request(ctx).outcome == .forward)
        }
    }

    @Test func errorSchedules() throws {
        var every = try chain("--error", "write=EIO,every=3")
        #expect((1...6).map { _ in every.request(context(.write)).outcome != .forward } == [false, false, true, false, false, true])
        var after = try chain("--error", "write=EIO,after=2")
        #expect((1...4).map { _ in after.request(context(.write)).outcome != .forward } == [false, false, true, true])
        var ranged = try chain("--error", "all=EIO,range=1M-2M")
        #expect(ranged.request(context(.read, offset: (1 << 20) - 4096, length: 4096)).outcome == .forward)
        #expect(ranged.request(context(.read, offset: (1 << 20) - 4096, length: 8192)).outcome != .forward)
        #expect(ranged.request(context(.read, offset: 2 << 20)).outcome == .forward)
        var filed = try chain("--error", "write=EIO,file=/run/fail")
        #expect(filed.request(context(.write)).outcome == .forward)
        #expect(filed.request(context(.write, exists: ["/run/fail"])).outcome != .forward)
        // Other commands never match a write rule.
        #expect(filed.request(context(.read, exists: ["/run/fail"])).outcome == .forward)
    }

    @Test func errorRateIsAProbabilityRepeatableWithASeed() throws {
        func failures(_ spec: String) throws -> Int {
            var c = try chain("--error", spec)
            return (0..<10_000).filter { _ in c.request(context(.read)).outcome != .forward }.count
        }
        let tenth = try failures("read=EIO,rate=10%,seed=1")
        #expect(tenth > 800 && tenth < 1200)
        #expect(try failures("read=EIO,rate=10%,seed=1") == tenth)
        #expect(try failures("read=EIO,rate=0") == 0)
    }

    @Test func disconnectAfterTheNthForwardedRequest() throws {
        var c = try chain("--error", "read=EIO", "--disconnect-after", "requests=2")
        // An answered request never went upstream and does not count.
        #expect(!c.request(context(.read)).disconnectAfter)
        #expect(!c.request(context(.write)).disconnectAfter)
        #expect(c.request(context(.write)).disconnectAfter)
        #expect(!c.request(context(.write)).disconnectAfter)
    }

    @Test func tokenBucketWaitsForWhatWasTakenBeyondTheRate() {
        var b = TokenBucket(bytesPerSecond: 1000, burstSeconds: 1, now: 0)
        #expect(b.take(500, now: 0) == 500_000_000)
        // Half a second later the debt is paid; a full second saves up at most the burst.
        #expect(b.take(0, now: 500_000_000) == 0)
        #expect(b.take(1500, now: 2_500_000_000) == 500_000_000)
    }
}
