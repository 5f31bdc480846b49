import Foundation
import NBDTestSupport
import Testing

/// Every emulation option with qemu 10 on both sides (qemu-io 10 -> nbdtap -> qemu-nbd 10):
/// each mask, refusal, zero mode, fast-zero mode and profile. qemu adapts to what it is
/// shown (writes zero buffers when WRITE_ZEROES is hidden, flushes when FUA is, skips a
/// discard when TRIM is); whatever it sends must reach qemu-nbd intact, its data must read
/// back, and nbdtap's log must agree with qemu-nbd's trace.
@Suite(.enabled(if: Peers.enabledWithQemu10()))
struct Qemu10EmulationTests {
    static let options: [[String]] = {
        var o: [[String]] = []
        for mask in ["fast-zero", "write-zeroes", "trim", "fua", "flush", "cache", "df", "multi-conn", "rotational", "block-status-payload"] {
            o.append(["--mask", mask])
        }
        for refusal in ["structured-replies", "meta-contexts", "extended-headers", "go", "list", "tls"] {
            o.append(["--no-\(refusal)"])
        }
        for zero in ["none", "notrim", "plugin", "emulate"] { o.append(["--zeromode", zero]) }
        for fast in ["none", "slow", "ignore"] { o.append(["--fastzeromode", fast]) }
        o.append(["--zeromode", "emulate", "--fastzeromode", "ignore"])
        o.append(["--mask-handshake", "no-zeroes"])
        o.append(["--handshake", "oldstyle"])
        for profile in ["nbd-server-3.24", "nbdkit-1.32", "qemu-nbd-7.2", "pre-extended-headers", "pre-fast-zero",
                        "pre-structured-replies", "oldstyle"] {
            o.append(["--emulate", profile])
        }
        return o
    }()

    static let commands = [
        "write -P 0x55 0 64k", "write -f -P 0x56 64k 64k", "write -z 128k 64k", "write -z -u 1M 64k", "discard 256k 64k",
        "aio_write -P 0x57 2M 8k", "aio_write -P 0x58 3M 8k", "aio_flush", "flush",
        "read -P 0x55 0 64k", "read -P 0x56 64k 64k", "read -P 0 128k 64k", "read -P 0 1M 64k",
        "read -P 0x57 2M 8k", "read -P 0x58 3M 8k", "map",
    ]

    @Test(arguments: options)
    func option(_ args: [String]) throws {
        try Peers.requireQemu10()
        let s = try Scratch()
        try s.run("truncate", ["-s", "16M", s.path("disk.raw")])
        let up = s.path("up.sock")
        try s.start(Peers.qemu10("qemu-nbd"), ["--persistent", "--shared=4", "-f", "raw", "-k", up,
                                             "--trace", "nbd_co_receive_request_decode_type", s.path("disk.raw")], name: "qemu-nbd")
        try s.waitFor(up)
        let px = s.path("px.sock")
        let io = "\(Peers.qemu10("qemu-io")) -t writeback -f raw 'nbd+unix:///?socket=\(px)' "
            + Self.commands.map { "-c '\($0)'" }.joined(separator: " ")
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--listen", "nbd+unix:///?socket=\(px)",
                                         "--log", s.path("px.log"), "--quiet"] + args + ["--run", io])
        let log = s.contents("px.log")
        #expect(r.status == 0, "\(args): \(r.output)")
        #expect(!r.output.contains("failed") && !r.output.contains("Pattern verification"), "\(args): \(r.output)\n\(log.suffix(2000))")
        #expect(r.output.components(separatedBy: "read ").count - 1 >= 6, "\(args): \(r.output)")
        #expect(!log.contains(" Violation ") && !log.contains("broke the protocol"), "\(args): \(log)")
        var trace: [String: Int] = [:]
        let expected = forwardedActionCounts(log)
        try? waitUntil("qemu-nbd's trace", timeout: 10) {
            trace = qemuDecodeTypeCounts(s.output(of: "qemu-nbd"))
            return trace == expected
        }
        #expect(!expected.isEmpty)
        #expect(trace == expected, "\(args): qemu-nbd traced \(trace), nbdtap forwarded \(expected)")
        // Extended headers reach the client unless the option takes them away.
        // Every profile refuses them (each is a server from before them, or Debian 12's).
        let refusesExtended = args.first == "--emulate" || args.first == "--handshake"
            || ["--no-extended-headers", "--no-structured-replies", "--no-go"].contains(args[0])
        let connect = log.split(separator: "\n").first { $0.contains(" Connect ") }.map(String.init) ?? ""
        #expect(connect.contains(refusesExtended ? "extended=0" : "extended=1"), "\(args): \(connect)")
    }
}
