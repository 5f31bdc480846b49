import NBDEmulation
import NBDProtocol
import Testing

/// The layer options' spellings, read as nbdkit reads its filters' parameters (sizes
/// with 1024-based suffixes, `20ms` delays, `10%` rates: the nbdkit-delay-filter,
/// nbdkit-error-filter and nbdkit-rate-filter man pages of nbdkit 1.32), and every bad
/// value refused with the value quoted.
struct LayerParseTests {
    @Test func delaysPerCommandWithJitter() throws {
        let d = try DelayLayer(spec: "read=20ms,write=1.5s,zero+trim=500us,jitter=2ms")
        #expect(d.delays == [.read: 20_000_000, .write: 1_500_000_000, .zero: 500_000, .trim: 500_000])
        #expect(d.jitter == 2_000_000)
        #expect(try DelayLayer(spec: "all=1").delays.count == LayerCommand.allCases.count)
    }

    @Test(arguments: ["", "read", "read=", "read=fast", "flying=20ms", "read=-1ms", "read=2h", "read=20ms,jitter=x", "read=1e3"])
    func badDelaysAreRefusedWithTheValue(_ spec: String) {
        #expect(throws: LayerOptionError.self) { try DelayLayer(spec: spec) }
        do { _ = try DelayLayer(spec: spec) } catch { #expect(error.description.contains("--delay '\(spec)'")) }
    }

    @Test func errorRulesWithSchedules() throws {
        let r = try ErrorRule(spec: "write+zero=enospc,rate=10%,every=3,after=2,range=1M-2M,file=/tmp/x,seed=9")
        #expect(r.commands == [.write, .zero] && r.error == .enospc)
        #expect(r.rate == 0.1 && r.every == 3 && r.after == 2 && r.range == (1 << 20)..<(2 << 20) && r.file == "/tmp/x")
        #expect(try ErrorRule(spec: "all=EIO").commands.count == 7)
    }

    @Test(arguments: ["write", "write=EBADF", "fly=EIO", "write=EIO,rate=200%", "write=EIO,every=0", "write=EIO,range=2M-1M",
                      "write=EIO,colour=red", "write=EIO,file="])
    func badErrorRulesAreRefused(_ spec: String) {
        #expect(throws: LayerOptionError.self) { try ErrorRule(spec: spec) }
    }

    @Test func ratesInBytesPerSecond() throws {
        let r = try RateLayer(spec: "10M")
        #expect(r.limits == [.init(scope: .total, way: .both, bytesPerSecond: 10 << 20)])
        let all = try RateLayer(spec: "connection=1k,read=2k,write=3k,connection-read=4k,connection-write=5k,total=6k,burstiness=50ms")
        #expect(all.limits.map(\.bytesPerSecond) == [1024, 2048, 3072, 4096, 5120, 6144])
        #expect(all.limits[0].scope == .connection && all.limits[0].way == .both)
        #expect(all.limits[3].scope == .connection && all.limits[3].way == .read)
        #expect(all.limits[5].scope == .total && all.limits[5].way == .both)
        #expect(all.burstSeconds == 0.05)
        for bad in ["", "fast", "0", "sideways=1M", "10M,burstiness=0"] {
            #expect(throws: LayerOptionError.self) { try RateLayer(spec: bad) }
        }
    }

    @Test func disconnectPoints() throws {
        #expect(try DisconnectLayer(spec: "5").point == .requests(5))
        #expect(try DisconnectLayer(spec: "client-bytes=1536k,times=2") == DisconnectLayer(point: .clientBytes(1536 << 10), times: 2))
        #expect(try DisconnectLayer(spec: "server-bytes=1M").point == .serverBytes(1 << 20))
        for bad in ["", "0", "requests=x", "soon=1", "times=2"] {
            #expect(throws: LayerOptionError.self) { try DisconnectLayer(spec: bad) }
        }
    }

    /// The order typed is the stacking order; the emulation options make one layer where
    /// the first of them stands; tokens of other options are skipped.
    @Test func chainKeepsTheOrderTyped() throws {
        let c = try PolicyChain(arguments: ["proxy", "--upstream", "nbd://x", "--delay", "write=20ms", "--zeromode=emulate",
                                            "--max-payload", "256k", "--mask", "trim", "--no-extents", "--error=write=EIO",
                                            "--log", "f.log", "--disconnect-after", "requests=9", "--rate", "1M"])
        #expect(c.layers.map(\.name) == ["delay", "emulate", "max-payload", "no-extents", "error", "disconnect-after", "rate"])
        #expect(c.emulation.zeroMode == .emulate && c.emulation.masked == [.trim])
        #expect(c.maxPayload == 256 << 10)
        #expect(!c.isTransparent)
        #expect(try PolicyChain(arguments: ["--log", "x"]).isTransparent)
        #expect(throws: PolicyChain.ParseError.self) { try PolicyChain(arguments: ["--max-payload", "100"]) }
        #expect(throws: PolicyChain.ParseError.self) { try PolicyChain(arguments: ["--max-payload", "64M"]) }
        #expect(throws: PolicyChain.ParseError.self) { try PolicyChain(arguments: ["--zeromode", "sometimes"]) }
        #expect(throws: PolicyChain.ParseError.self) { try PolicyChain(arguments: ["--delay"]) }
    }
}
