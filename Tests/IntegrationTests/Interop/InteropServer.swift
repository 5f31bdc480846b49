import Foundation
import NBDTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The upstream servers of the interop matrix, two generations, each with its own record
/// of the requests it received: nbdkit's log filter, qemu's
/// `nbd_co_receive_request_decode_type` trace, nbd-server's transaction log.
enum InteropServer: String, CaseIterable, CustomStringConvertible, Sendable {
    case nbdkit = "nbdkit-1.32"
    case qemuNBD7 = "qemu-nbd-7.2"
    case qemuNBD10 = "qemu-nbd-10"
    case storageDaemon10 = "qemu-storage-daemon-10"
    case nbdServer = "nbd-server-3.24"

    var description: String { rawValue }

    /// Every export is this big: small enough for CI, large enough for several extents.
    static let exportSize = 16 << 20

    /// Whether the server's record names each request's flags as nbdkit's log does.
    var recordsFlags: Bool { self == .nbdkit }

    /// nbd-server 3.24 truncates its transaction log at each new connection.
    var recordsLastConnectionOnly: Bool { self == .nbdServer }
}

/// A server started for one pair, in that pair's scratch directory.
struct RunningServer {
    let kind: InteropServer
    var recordsLastConnectionOnly: Bool { kind.recordsLastConnectionOnly }
    /// What nbdtap's `--upstream` gets.
    let upstreamURI: String
    /// The export clients ask for ("" but for nbd-server, which has no default export).
    let exportName: String
    let scratch: Scratch
    /// nbd-server daemonizes: its pid file, to end it by PID.
    let pidFile: String?

    /// Requests per nbdkit log action (with flags for nbdkit), from the server's own record.
    func record() -> [String: Int] {
        switch kind {
        case .nbdkit:
            return requestCounts(scratch.contents("nbdkit.log"))
        case .qemuNBD7, .qemuNBD10, .storageDaemon10:
            return qemuDecodeTypeCounts(scratch.output(of: "server"))
        case .nbdServer:
            return nbdServerActionCounts((try? Data(contentsOf: URL(fileURLWithPath: scratch.path("transaction.log")))) ?? Data())
        }
    }

    func stop() {
        guard let pidFile, let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return }
        kill(pid, SIGTERM)
        for _ in 0..<200 where kill(pid, 0) == 0 { usleep(10_000) }
        if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
    }
}

extension Scratch {
    /// Starts `kind` on a fresh 16 MiB export (memory for nbdkit, a sparse raw file for the
    /// others) and waits until it accepts connections.
    func startServer(_ kind: InteropServer) throws -> RunningServer {
        let size = InteropServer.exportSize
        let disk = path("export.raw")
        let sock = path("server.sock")
        if kind != .nbdkit { try run("truncate", ["-s", String(size), disk]) }
        let trace = ["--trace", "nbd_co_receive_request_decode_type"]
        switch kind {
        case .nbdkit:
            try Peers.require("nbdkit")
            try start("nbdkit", ["-f", "--exit-with-parent", "-U", sock, "--filter=log", "memory", String(size),
                                 "logfile=\(path("nbdkit.log"))"], name: "server")
        case .qemuNBD7:
            try Peers.require("qemu-nbd")
            try start("qemu-nbd", ["--persistent", "--shared=16", "-f", "raw", "-k", sock] + trace + [disk], name: "server")
        case .qemuNBD10:
            try Peers.requireQemu10()
            try start(Peers.qemu10("qemu-nbd"), ["--persistent", "--shared=16", "-f", "raw", "-k", sock] + trace + [disk], name: "server")
        case .storageDaemon10:
            try Peers.requireQemu10()
            try start(Peers.qemu10("qemu-storage-daemon"), [
                "--blockdev", "driver=file,node-name=disk,filename=\(disk)",
                "--nbd-server", "addr.type=unix,addr.path=\(sock),max-connections=16",
                "--export", "type=nbd,id=export0,node-name=disk,writable=on,name=",
            ] + trace, name: "server")
        case .nbdServer:
            try Peers.require("nbd-server")
            let port = freePort()
            let config = nbdServerConfig(port: port, disk: disk, log: path("transaction.log"))
            try config.write(toFile: path("nbd-server.cfg"), atomically: true, encoding: .utf8)
            // Without -d nbd-server forks a child per connection (qemu-img and nbdcopy open
            // several) and leaves the foreground at once: its pid file is how it is ended.
            // Started through Python with close_fds: the daemon would otherwise keep a
            // descriptor Foundation's Process waits on, and waitUntilExit never returns.
            let r = try run("/usr/bin/python3", ["-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:], close_fds=True))",
                                                 "/usr/bin/nbd-server", "-C", path("nbd-server.cfg"), "-p", path("nbd-server.pid")])
            guard r.status == 0 else { throw HarnessError.timeout("nbd-server did not start: \(r.output)") }
            try waitUntil("nbd-server to listen on \(port)") { tcpListening(port) }
            return RunningServer(kind: kind, upstreamURI: "nbd://127.0.0.1:\(port)", exportName: "export1", scratch: self,
                                 pidFile: path("nbd-server.pid"))
        }
        try waitFor(sock)
        return RunningServer(kind: kind, upstreamURI: "nbd+unix:///?socket=\(sock)", exportName: "", scratch: self, pidFile: nil)
    }
}
