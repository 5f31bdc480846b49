import NBDEmulation
import NBDProtocol
import Testing

/// Reading options from their command-line spelling, and the errors that name bad input.
@Suite struct ParseTests {
    @Test func noArgumentsIsTransparent() throws {
        let options = try EmulationOptions(arguments: [])
        #expect(options == .transparent)
        #expect(options.isTransparent)
        #expect(options.arguments == [])
        #expect(options.changes == ["nothing (transparent)"])
    }

    @Test(arguments: MaskFeature.allCases)
    func everyMaskFeature(_ feature: MaskFeature) throws {
        let options = try EmulationOptions(arguments: ["--mask", feature.name])
        #expect(options.masked == [feature])
        #expect(!options.isTransparent)
    }

    @Test func maskListsAccumulateAndAcceptBothSpellings() throws {
        let options = try EmulationOptions(arguments: ["--mask", "trim, FUA", "--mask=fast_zero,block-status-payload", "--mask", "trim"])
        #expect(options.masked == [.trim, .fua, .fastZero, .blockStatusPayload])
    }

    @Test func everyFlag() throws {
        let options = try EmulationOptions(arguments: [
            "--read-only", "--no-structured-replies", "--no-meta-contexts", "--no-extended-headers",
            "--no-go", "--no-list", "--no-tls",
        ])
        #expect(options.readOnly)
        #expect(options.refused == Set(RefusableOption.allCases))
    }

    @Test func handshakeOptions() throws {
        let options = try EmulationOptions(arguments: ["--mask-handshake", "fixed-newstyle,no-zeroes", "--handshake", "oldstyle"])
        #expect(options.maskedHandshake == [.fixedNewstyle, .noZeroes])
        #expect(options.handshake == .oldstyle)
        #expect(try EmulationOptions(arguments: ["--handshake=newstyle"]).isTransparent)
    }

    @Test(arguments: ZeroMode.arguments)
    func everyZeroMode(_ mode: ZeroMode) throws {
        let options = try EmulationOptions(arguments: ["--zeromode", mode.rawValue])
        #expect(options.zeroMode == mode)
        #expect(!options.isTransparent)
    }

    @Test(arguments: FastZeroMode.allCases)
    func everyFastZeroMode(_ mode: FastZeroMode) throws {
        let options = try EmulationOptions(arguments: ["--fastzeromode=\(mode.rawValue)"])
        #expect(options.fastZeroMode == mode)
        // default is the default: giving it changes nothing.
        #expect(options.isTransparent == (mode == .default))
    }

    @Test func lastScalarWins() throws {
        let options = try EmulationOptions(arguments: ["--zeromode", "emulate", "--zeromode", "notrim", "--fastzeromode", "slow", "--fastzeromode", "ignore"])
        #expect(options.zeroMode == .notrim)
        #expect(options.fastZeroMode == .ignore)
    }

    @Test func profileIsTheBaseWhereverItAppears() throws {
        let after = try EmulationOptions(arguments: ["--mask", "trim", "--emulate", "nbd-server-3.24", "--zeromode", "emulate"])
        let before = try EmulationOptions(arguments: ["--emulate", "NBD-SERVER-3.24", "--mask", "trim", "--zeromode", "emulate"])
        #expect(after == before)
        #expect(after.masked == Profile.nbdServer.options.masked.union([.trim]))
        #expect(after.refused == Profile.nbdServer.options.refused)
        #expect(after.zeroMode == .emulate)
        // The oldstyle profile's handshake survives unless overridden.
        #expect(try EmulationOptions(arguments: ["--emulate", "oldstyle", "--read-only"]).handshake == .oldstyle)
        #expect(try EmulationOptions(arguments: ["--emulate", "oldstyle", "--handshake", "newstyle"]).handshake == .newstyle)
    }

    @Test(arguments: [
        (["--mask", "frobnicate"], EmulationOptionError.unknownFeature("frobnicate")),
        (["--mask", "trim,bogus,fua"], .unknownFeature("bogus")),
        (["--mask", "trim,,fua"], .emptyListItem(option: "--mask", value: "trim,,fua")),
        (["--mask", ""], .emptyListItem(option: "--mask", value: "")),
        (["--mask-handshake", "no-zeros"], .unknownHandshakeFeature("no-zeros")),
        (["--mask-handshake", "no-zeroes,"], .emptyListItem(option: "--mask-handshake", value: "no-zeroes,")),
        (["--handshake", "fixed"], .unknownHandshakeStyle("fixed")),
        (["--zeromode", "passthrough"], .unknownZeroMode("passthrough")),
        (["--zeromode", "trim"], .unknownZeroMode("trim")),
        (["--fastzeromode", "fast"], .unknownFastZeroMode("fast")),
        (["--emulate", "nbd-server"], .unknownProfile("nbd-server")),
        (["--read-only", "--mask"], .missingValue(option: "--mask")),
        (["--read-only=yes"], .unexpectedValue(option: "--read-only", value: "yes")),
        (["--no-go=1"], .unexpectedValue(option: "--no-go", value: "1")),
        (["--no-zeroes"], .unknownArgument("--no-zeroes")),
        (["trim"], .unknownArgument("trim")),
    ] as [([String], EmulationOptionError)])
    func errorsNameTheBadInput(_ arguments: [String], _ expected: EmulationOptionError) {
        #expect(throws: expected) { try EmulationOptions(arguments: arguments) }
    }

    @Test func errorMessagesQuoteInputAndListTheChoices() {
        #expect(EmulationOptionError.unknownFeature("frob").description
                == "unknown --mask feature 'frob' (known: fast-zero, write-zeroes, trim, fua, flush, cache, df, multi-conn, rotational, block-status-payload)")
        #expect(EmulationOptionError.unknownZeroMode("x").description == "unknown --zeromode 'x' (known: none, emulate, notrim, plugin)")
        #expect(EmulationOptionError.unknownFastZeroMode("x").description == "unknown --fastzeromode 'x' (known: none, slow, ignore, default)")
        #expect(EmulationOptionError.unknownProfile("x").description.hasPrefix("unknown --emulate profile 'x' (known: nbd-server-3.24, nbdkit-1.32, qemu-nbd-7.2,"))
        #expect(EmulationOptionError.missingValue(option: "--mask").description == "--mask needs a value")
    }

    @Test func componentParsersForTheCommandLine() throws {
        #expect(try EmulationOptions.parseMask("df,cache") == [.df, .cache])
        #expect(try EmulationOptions.parseMaskHandshake("no-zeroes") == [.noZeroes])
        #expect(try EmulationOptions.parseHandshake("OLDSTYLE") == .oldstyle)
        #expect(try EmulationOptions.parseZeroMode("notrim") == .notrim)
        #expect(try EmulationOptions.parseFastZeroMode("slow") == .slow)
        #expect(try EmulationOptions.parseProfile("pre-fast-zero") == .preFastZero)
        #expect(throws: EmulationOptionError.unknownFeature("x")) { try EmulationOptions.parseMask("x") }
    }

    /// `arguments` is the canonical spelling: it parses back to the same options.
    @Test(arguments: Profile.all.map(\.options) + [
        EmulationOptions(masked: [.rotational, .fua], readOnly: true, refused: [.tls, .list], maskedHandshake: [.noZeroes],
                         zeroMode: .notrim, fastZeroMode: .ignore),
        EmulationOptions(fastZeroMode: .slow),
        EmulationOptions(zeroMode: .plugin),
    ])
    func argumentsRoundTrip(_ options: EmulationOptions) throws {
        #expect(try EmulationOptions(arguments: options.arguments) == options)
    }

    @Test func canonicalOrder() {
        let options = EmulationOptions(masked: [.blockStatusPayload, .fastZero, .trim], readOnly: true, refused: [.tls, .structuredReplies],
                                       maskedHandshake: [.noZeroes, .fixedNewstyle], handshake: .oldstyle,
                                       zeroMode: .emulate, fastZeroMode: .slow)
        #expect(options.arguments == ["--mask", "trim,fast-zero,block-status-payload", "--read-only",
                                      "--no-structured-replies", "--no-tls",
                                      "--mask-handshake", "fixed-newstyle,no-zeroes", "--handshake", "oldstyle",
                                      "--zeromode", "emulate", "--fastzeromode", "slow"])
    }
}
