import Foundation
import NBDTestSupport
import Testing

/// How nbdtap sits in the pair: transparent, refusing extended headers, or with one
/// emulation option (a different one per pair, so each option meets several clients and
/// servers).
enum InteropVariant: Hashable, Sendable, CustomStringConvertible {
    case transparent
    case noExtendedHeaders
    case emulation([String])

    static let emulationOptions: [[String]] = [
        ["--emulate", "pre-extended-headers"], ["--mask", "fast-zero"], ["--zeromode", "emulate"], ["--mask", "multi-conn"],
    ]

    var arguments: [String] {
        switch self {
        case .transparent: return []
        case .noExtendedHeaders: return ["--no-extended-headers"]
        case .emulation(let a): return a
        }
    }

    var description: String {
        switch self {
        case .transparent: return "transparent"
        case .noExtendedHeaders: return "no-extended-headers"
        case .emulation(let a): return a.joined(separator: " ")
        }
    }
}

struct InteropCase: Hashable, Sendable, CustomTestStringConvertible {
    var client: InteropClient
    var server: InteropServer
    var variant: InteropVariant
    var testDescription: String { "\(client) -> nbdtap \(variant) -> \(server)" }

    static let all: [InteropCase] = {
        var cases: [InteropCase] = []
        for (ci, client) in InteropClient.allCases.enumerated() {
            for (si, server) in InteropServer.allCases.enumerated() {
                let option = InteropVariant.emulationOptions[(ci + si) % InteropVariant.emulationOptions.count]
                for variant in [InteropVariant.transparent, .noExtendedHeaders, .emulation(option)] {
                    cases.append(InteropCase(client: client, server: server, variant: variant))
                }
            }
        }
        return cases
    }()
}

/// Every client against every server through nbdtap, Debian 12's generation and qemu 10's:
/// the client sees no error and reads back its own data, and nbdtap's per-command counts
/// equal the server's own record of what it received.
@Suite(.enabled(if: Peers.enabledWithQemu10("nbdkit", "qemu-nbd", "qemu-img", "qemu-io", "nbd-server", "nbdsh", "nbdcopy", "nbdinfo", "fio")))
struct InteropMatrixTests {
    @Test(arguments: InteropCase.all)
    func pair(_ c: InteropCase) throws {
        let s = try Scratch()
        if c.client.needsQemu10 { try Peers.requireQemu10() }
        for t in c.client.tools { try Peers.require(t) }
        try c.client.prepare(s)
        let server = try s.startServer(c.server)
        defer { server.stop() }
        let listen = s.path("px.sock")
        let clientURI = "nbd+unix:///\(server.exportName)?socket=\(listen)"
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", server.upstreamURI, "--listen", "nbd+unix:///?socket=\(listen)",
                                         "--log", s.path("px.log"), "--quiet"] + c.variant.arguments + ["--run", c.client.command(dir: s.dir, oneConnection: server.recordsLastConnectionOnly)],
                          timeout: 180, environment: ["CLIENT_URI": clientURI])
        let px = s.contents("px.log")
        #expect(c.client.succeeded(r.output, status: r.status), "\(c): \(r.output)\n\(px.suffix(3000))")

        // What nbdtap saw, less what it answered itself, plus the WRITEs it sent for
        // emulated zeroes: what the server must have received.
        let emulated = px.contains(" Emulate id=")
        let flagLevel = c.server.recordsFlags && !emulated
        // nbd-server 3.24 starts its transaction log anew for each connection: its record
        // is the last connection's, set beside nbdtap's log of that connection.
        let compared = server.recordsLastConnectionOnly ? lastConnection(px) : px
        let expected = flagLevel ? requestCounts(compared) : forwardedActionCounts(compared)
        var record: [String: Int] = [:]
        try? waitUntil("the server's record to catch up", timeout: 10) {
            record = flagLevel ? server.record() : actionsOnly(server.record())
            return record == expected
        }
        // nbdinfo sends requests only for --map, which nbd-server 3.24 cannot serve.
        if !(c.client == .nbdinfo && c.server == .nbdServer) { #expect(!expected.isEmpty, "\(c): nbdtap logged no request") }
        #expect(record == expected, "\(c): server recorded \(record), nbdtap \(expected)")

        // Real peers earn compliance notes (qemu 10's WRITEs), never a violation.
        let violations = px.split(separator: "\n").filter { $0.contains(" Violation ") || $0.contains("broke the protocol") }
        #expect(violations.isEmpty, "\(c): \(violations)")
        let connect = px.split(separator: "\n").first { $0.contains(" Connect ") }.map(String.init) ?? ""
        #expect(!connect.isEmpty, "\(c): no Connect line")
        checkNegotiation(c, connect: connect, log: px)
        if c.client == .nbdinfo { try checkMapMatchesDirect(s, server) }
        if c.variant == .transparent {
            print("MATRIX | \(c.client) | \(c.server) | \(negotiationSummary(connect, log: px)) |")
        }
    }

    /// What each pair must negotiate: extended headers exactly when both peers are qemu 10
    /// (nbdkit 1.32, libnbd 1.14 and nbd-server 3.24 do not speak them) and nbdtap lets
    /// them through.
    func checkNegotiation(_ c: InteropCase, connect: String, log: String) {
        let bothNew = c.client.needsQemu10 && (c.server == .qemuNBD10 || c.server == .storageDaemon10)
        let extendedAllowed: Bool
        switch c.variant {
        case .transparent: extendedAllowed = true
        case .noExtendedHeaders: extendedAllowed = false
        case .emulation(let a): extendedAllowed = a != ["--emulate", "pre-extended-headers"]
        }
        #expect(connect.contains("extended=\(bothNew && extendedAllowed ? 1 : 0)"), "\(c): \(connect)")
        if c.server != .nbdServer {
            // Every server but nbd-server serves structured replies; without extended
            // headers qemu 10 falls back to them.
            #expect(connect.contains("structured=1"), "\(c): \(connect)")
        }
        if bothNew && extendedAllowed && log.contains(" Write id=") {
            #expect(log.contains("Compliance from=client code=write_without_payload_len"), "\(c)")
        }
    }

    /// nbdinfo's map through nbdtap equals its map straight from the server (taken after
    /// the record was compared, so it does not count).
    func checkMapMatchesDirect(_ s: Scratch, _ server: RunningServer) throws {
        let direct = server.upstreamURI.hasPrefix("nbd://") ? server.upstreamURI + "/" + server.exportName : server.upstreamURI
        let r = try s.run("/bin/sh", ["-c", InteropClient.nbdinfoMap(uri: "'\(direct)'", out: s.path("direct-map.txt"))])
        #expect(r.status == 0 && s.contents("direct-map.txt") == s.contents("map.txt"), "direct \(s.contents("direct-map.txt")) vs proxied \(s.contents("map.txt"))")
        // The size nbdinfo reports through nbdtap is the one it reports directly (16 MiB,
        // but 0 from nbd-server 3.24, whose NBD_OPT_INFO reply says 0 while GO says 16 MiB).
        func size(_ json: String) -> String? {
            json.split(separator: "\n").first { $0.contains("\"export-size\":") }.map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let info = try s.run("nbdinfo", ["--json", direct])
        #expect(size(s.contents("info.json")) != nil && size(s.contents("info.json")) == size(info.output), "\(s.contents("info.json")) vs \(info.output)")
        if server.kind != .nbdServer { #expect(size(info.output)?.contains("\(InteropServer.exportSize)") == true) }
    }

    /// `extended=1 structured=1 eflags=0x1ced minsize=... contexts` for the Docs table.
    func negotiationSummary(_ connect: String, log: String) -> String {
        func field(_ k: String) -> String {
            connect.split(separator: " ").first { $0.hasPrefix(k + "=") }.map { String($0.dropFirst(k.count + 1)) } ?? "-"
        }
        let contexts = log.split(separator: "\n").filter { $0.contains("reply=META_CONTEXT") }
            .compactMap { $0.split(separator: " ").first { $0.hasPrefix("context=") }?.dropFirst(8) }
        let eflags = UInt32(field("eflags").dropFirst(2), radix: 16) ?? 0
        let multiConn = eflags & 0x100 != 0 ? "yes" : "no"
        let blockSize = field("maxsize") == "-" || field("maxsize") == "0x0" ? "none" : "\(field("minsize"))/\(field("prefsize"))/\(field("maxsize"))"
        let connections = log.split(separator: "\n").filter { $0.contains(" Connect ") }.count
        return "\(field("extended") == "1" ? "yes" : "no") | \(field("structured") == "1" ? "yes" : "no") | \(field("eflags")) | \(multiConn) | \(blockSize) | \(Set(contexts).sorted().joined(separator: ",")) | \(connections)"
    }
}

/// The log lines of the highest-numbered connection.
func lastConnection(_ log: String) -> String {
    let re = try! NSRegularExpression(pattern: #" connection=(\d+) "#)
    var last = 0
    for line in log.split(separator: "\n") {
        let l = String(line)
        if let m = re.firstMatch(in: l, range: NSRange(l.startIndex..., in: l)), let n = Int(l[Range(m.range(at: 1), in: l)!]) { last = max(last, n) }
    }
    return log.split(separator: "\n").filter { $0.contains(" connection=\(last) ") }.joined(separator: "\n")
}

/// nbdtap's request counts per action, less the requests nbdtap answered itself
/// (`Emulate id=N answered=NBD_CMD_X`), with each emulated WRITE_ZEROES counted as the
/// WRITEs it became (`zero_as_writes=K`).
func forwardedActionCounts(_ log: String) -> [String: Int] {
    var counts = actionCounts(log)
    let actions = ["READ": "Read", "WRITE": "Write", "WRITE_ZEROES": "Zero", "TRIM": "Trim", "FLUSH": "Flush",
                   "BLOCK_STATUS": "Extents", "CACHE": "Cache"]
    for line in log.split(separator: "\n") where line.contains(" Emulate id=") {
        let fields = line.split(separator: " ")
        if let answered = fields.first(where: { $0.hasPrefix("answered=NBD_CMD_") })?.dropFirst(17),
           let action = actions[String(answered)] {
            counts[action, default: 0] -= 1
        }
        if let k = fields.first(where: { $0.hasPrefix("zero_as_writes=") }).flatMap({ Int($0.dropFirst(15)) }) {
            counts["Zero", default: 0] -= 1
            counts["Write", default: 0] += k
        }
    }
    return counts.filter { $0.value != 0 }
}
