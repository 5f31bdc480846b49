import NBDEmulation
import NBDProtocol
import Testing

/// Each tool profile, applied in front of nbdkit 1.32.5 (the most capable peer installed),
/// must look like the tool it names as Fixtures/measure.sh measured it: the same
/// transmission flags with and without structured replies, the same handshake flags, and
/// the same final answer to every option.
@Suite struct ProfileMeasurementTests {
    static let upstream = try! PeerFixture.load("nbdkit")

    static let measuredProfiles: [(profile: String, fixture: String)] = [
        ("nbdkit-1.32", "nbdkit"),
        ("qemu-nbd-7.2", "qemu-nbd"),
        ("nbd-server-3.24", "nbd-server"),
    ]

    @Test(arguments: measuredProfiles.map(\.profile))
    func transmissionFlags(_ name: String) throws {
        let profile = try #require(Profile.named(name))
        let target = try PeerFixture.load(Self.measuredProfiles.first { $0.profile == name }!.fixture)
        let plain = flags(try hexFlags(Self.upstream.probe.eflagsGo))
        let structured = flags(try hexFlags(Self.upstream.probe.eflagsGoStructured))
        let options = profile.options
        // A client that asked for structured replies got them only if the profile let the option through.
        let gotStructured = options.optionDecision(.structuredReply) == .forward
        #expect(options.shownFlags(upstream: plain, structuredOrExtended: false) == flags(try hexFlags(target.probe.eflagsGo)))
        #expect(options.shownFlags(upstream: gotStructured ? structured : plain, structuredOrExtended: gotStructured)
                == flags(try hexFlags(target.probe.eflagsGoStructured)))
        #expect(options.shownFlags(upstream: plain, structuredOrExtended: false) == flags(try hexFlags(target.probe.eflagsExportName)))
    }

    @Test(arguments: measuredProfiles.map(\.profile))
    func handshakeFlags(_ name: String) throws {
        let profile = try #require(Profile.named(name))
        let target = try PeerFixture.load(Self.measuredProfiles.first { $0.profile == name }!.fixture)
        let upstream = HandshakeFlags(rawValue: try hexFlags(Self.upstream.probe.handshakeFlags))
        #expect(profile.options.handshakeFlags(upstream: upstream).rawValue == (try hexFlags(target.probe.handshakeFlags)))
    }

    /// The client's view of an option: nbdtap's refusal, or nbdkit's own answer.
    @Test(arguments: measuredProfiles.map(\.profile))
    func optionAnswers(_ name: String) throws {
        let profile = try #require(Profile.named(name))
        let target = try PeerFixture.load(Self.measuredProfiles.first { $0.profile == name }!.fixture)
        let upstreamAnswers = try #require(Self.upstream.probe.options)
        let measured = try #require(target.probe.options)
        let numbers: [String: NBDOption] = [
            "LIST": .list, "STARTTLS": .startTLS, "INFO": .info, "GO": .go, "STRUCTURED_REPLY": .structuredReply,
            "LIST_META_CONTEXT": .listMetaContext, "SET_META_CONTEXT": .setMetaContext,
            "EXTENDED_HEADERS": .extendedHeaders, "UNKNOWN_99": .unknown(99),
        ]
        #expect(Set(measured.keys) == Set(numbers.keys))
        for (optionName, option) in numbers {
            let seen: String
            switch profile.options.optionDecision(option) {
            case .forward: seen = try #require(upstreamAnswers[optionName])
            case .refuse(let reply): seen = reply.name
            case .disconnect: seen = "DISCONNECTED"
            }
            #expect(seen == measured[optionName], "\(optionName)")
        }
    }

    @Test func readOnlyMatchesNbdkitReadOnly() throws {
        let readOnly = try PeerFixture.load("nbdkit-readonly")
        let options = EmulationOptions(readOnly: true)
        #expect(options.shownFlags(upstream: flags(try hexFlags(Self.upstream.probe.eflagsGo)), structuredOrExtended: false)
                == flags(try hexFlags(readOnly.probe.eflagsGo)))
        #expect(options.shownFlags(upstream: flags(try hexFlags(Self.upstream.probe.eflagsGoStructured)), structuredOrExtended: true)
                == flags(try hexFlags(readOnly.probe.eflagsGoStructured)))
    }

    /// The oldstyle profile's flags are historical, not measured; the greeting they go in
    /// was (nbdkit -o). Over nbdkit's 0xd6d it leaves FLUSH, FUA and TRIM.
    @Test func oldstyleOverNbdkitOldstyle() throws {
        let oldstyle = try PeerFixture.load("nbdkit-oldstyle")
        let upstream = flags(try hexFlags(oldstyle.probe.eflagsOldstyle))
        #expect(upstream == flags(0xd6d))
        #expect(Profile.oldstyle.options.shownFlags(upstream: upstream, structuredOrExtended: false)
                == [.hasFlags, .sendFlush, .sendFUA, .sendTrim])
    }

    /// Measured facts the docs quote, pinned so a re-measurement that changes them is noticed.
    @Test func measuredValues() throws {
        let expected: [(String, String?, String?, String?)] = [
            // fixture, GO without / with structured replies, oldstyle greeting
            ("nbdkit", "0xd6d", "0xded", nil),
            ("qemu-nbd", "0xc6d", "0xced", nil),
            ("qemu-nbd-shared2", "0xd6d", "0xded", nil),
            ("qemu-nbd-readonly", "0x40f", "0x48f", nil),
            ("nbdkit-readonly", "0x507", "0x587", nil),
            ("nbd-server", "0x16d", "0x16d", nil),
            ("nbdkit-oldstyle", nil, nil, "0xd6d"),
        ]
        for (name, go, goStructured, oldstyle) in expected {
            let fixture = try PeerFixture.load(name)
            #expect(fixture.probe.eflagsGo == go, "\(name)")
            #expect(fixture.probe.eflagsGoStructured == goStructured, "\(name)")
            #expect(fixture.probe.eflagsOldstyle == oldstyle, "\(name)")
            #expect(!fixture.serverCommand.isEmpty && !fixture.version.isEmpty, "\(name)")
        }
        let nbdServer = try PeerFixture.load("nbd-server")
        #expect(nbdServer.probe.options?["STRUCTURED_REPLY"] == "ERR_UNSUP")
        for peer in ["nbdkit", "qemu-nbd", "nbd-server"] {
            #expect(try PeerFixture.load(peer).probe.options?["EXTENDED_HEADERS"] == "ERR_UNSUP", "\(peer)")
            #expect(try PeerFixture.load(peer).probe.options?["STARTTLS"] == "ERR_POLICY", "\(peer)")
        }
    }
}
