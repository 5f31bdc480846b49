import NBDEmulation
import NBDProtocol
import Testing

/// `--mask-handshake`: the greeting's flags and the client's answer to them.
@Suite struct HandshakeTests {
    let upstream: HandshakeFlags = [.fixedNewstyle, .noZeroes]  // 0x3, every measured peer

    @Test func masksEachFlag() {
        #expect(EmulationOptions().handshakeFlags(upstream: upstream) == upstream)
        #expect(EmulationOptions(maskedHandshake: [.noZeroes]).handshakeFlags(upstream: upstream) == [.fixedNewstyle])
        #expect(EmulationOptions(maskedHandshake: [.fixedNewstyle]).handshakeFlags(upstream: upstream) == [.noZeroes])
        #expect(EmulationOptions(maskedHandshake: [.fixedNewstyle, .noZeroes]).handshakeFlags(upstream: upstream) == [])
    }

    @Test func neverAddsAFlagTheUpstreamLacks() {
        #expect(EmulationOptions(maskedHandshake: [.noZeroes]).handshakeFlags(upstream: [.fixedNewstyle]) == [.fixedNewstyle])
    }

    @Test func clientAnsweringAHiddenFlagIsDropped() {
        let options = EmulationOptions(maskedHandshake: [.noZeroes])
        #expect(options.acceptsClientFlags([.fixedNewstyle]))
        #expect(options.acceptsClientFlags([]))
        #expect(!options.acceptsClientFlags([.fixedNewstyle, .noZeroes]))
        let nonFixed = EmulationOptions(maskedHandshake: [.fixedNewstyle])
        #expect(!nonFixed.acceptsClientFlags([.fixedNewstyle]))
        #expect(EmulationOptions.transparent.acceptsClientFlags([.fixedNewstyle, .noZeroes]))
    }
}
