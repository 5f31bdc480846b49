import Foundation
import NBDEmulation
import NBDProtocol
import Testing

/// The measurements the profiles and the nozero semantics are checked against, written by
/// Fixtures/measure.sh and Fixtures/measure-nozero.py (each file names its command).
let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

/// One peer measured by measure.sh.
struct PeerFixture: Decodable {
    let peer: String
    let version: String
    let serverCommand: String
    let probe: Probe

    struct Probe: Decodable {
        let handshakeFlags: String?
        let eflagsGo: String?
        let eflagsGoStructured: String?
        let eflagsExportName: String?
        let eflagsInfo: String?
        let eflagsOldstyle: String?
        let options: [String: String]?
    }

    static func load(_ name: String) throws -> PeerFixture {
        try decode(PeerFixture.self, from: "\(name).json")
    }
}

/// measure-nozero.py's matrix.
struct NozeroFixture: Decodable {
    let version: String
    let serverCommand: String
    let requests: [Request]
    let results: [String: Result]

    struct Request: Decodable {
        let name: String
        let count: UInt64
        let offset: UInt64
        let flags: UInt16
    }

    struct Result: Decodable {
        let eflags: String
        let requests: [String: Outcome]
    }

    struct Outcome: Decodable {
        let answer: String
        let pluginCalls: [String]
    }

    static func load() throws -> NozeroFixture {
        try decode(NozeroFixture.self, from: "nozero.json")
    }
}

func decode<T: Decodable>(_ type: T.Type, from file: String) throws -> T {
    let data = try Data(contentsOf: fixturesDirectory.appendingPathComponent(file))
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    return try decoder.decode(type, from: data)
}

/// "0xded" as the fixtures write flags.
func hexFlags(_ text: String?, sourceLocation: SourceLocation = #_sourceLocation) throws -> UInt16 {
    let text = try #require(text, sourceLocation: sourceLocation)
    #expect(text.hasPrefix("0x"), sourceLocation: sourceLocation)
    return try #require(UInt16(text.dropFirst(2), radix: 16), sourceLocation: sourceLocation)
}

func flags(_ raw: UInt16) -> TransmissionFlags { TransmissionFlags(rawValue: raw) }

/// A request with the fields the policy looks at; cookie 7, compact unless `extended`.
func request(_ command: NBDCommand, _ flags: CommandFlags = [], offset: UInt64 = 0, length: UInt64 = 4096,
             extended: Bool = false) -> RequestHeader {
    RequestHeader(flags: flags, command: command, cookie: 7, offset: offset, length: length, extended: extended)
}

/// nbdkit memory 1M with structured replies: everything 1.32 offers (0xded, fixture nbdkit.json).
let nbdkitFlags = flags(0xded)
/// Every flag the spec defines but READ_ONLY and RESIZE: what a newest server could show.
let everyFeature: TransmissionFlags = TransmissionFlags.known.subtracting([.readOnly, .sendResize])

extension RequestDecision {
    /// The error of an `.answer`, for compact expectations.
    var answeredError: ErrorValue? {
        if case .answer(let error, _) = self { return error }
        return nil
    }

    var forwarded: RequestHeader? {
        if case .forward(let header) = self { return header }
        return nil
    }

    var zeroWrites: ZeroWrites? {
        if case .emulateZero(let writes) = self { return writes }
        return nil
    }
}
