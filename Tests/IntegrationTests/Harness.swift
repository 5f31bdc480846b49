import Foundation
import NBDProtocol
import NBDProxy
import NBDReport
import Testing
#if canImport(Glibc)
import Glibc
#endif

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The nbdtap binary built next to the tests.
var nbdtapBinary: String { repoRoot.appendingPathComponent(".build/debug/nbdtap").path }

/// A temporary directory of one test, with the processes it started: each is ended by
/// PID when the test finishes, and the directory removed.
final class Scratch {
    let dir: String
    var processes: [Process] = []

    init() throws {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("nbdtap-test-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        dir = d
    }

    deinit {
        for p in processes where p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    func path(_ name: String) -> String { dir + "/" + name }

    static var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        // nbdsh and python3-libnbd need Debian's /usr/bin/python3.
        env["PATH"] = "/usr/bin:/usr/sbin:/bin:/sbin:" + (env["PATH"] ?? "")
        env.removeValue(forKey: "PYTHONHOME")
        env.removeValue(forKey: "PYTHONPATH")
        return env
    }

    /// Starts a long-running process (a server) with output to files in the scratch dir.
    @discardableResult
    func start(_ tool: String, _ args: [String], name: String? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Peers.path(tool) ?? tool)
        p.arguments = args
        p.environment = Self.environment
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let base = name ?? (tool as NSString).lastPathComponent
        _ = FileManager.default.createFile(atPath: path("\(base).out"), contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: path("\(base).out"))
        p.standardError = p.standardOutput
        try p.run()
        processes.append(p)
        return p
    }

    struct Result {
        var status: Int32
        var output: String
    }

    /// Runs a command to completion (bounded by `timeout` seconds) and returns its output.
    @discardableResult
    func run(_ tool: String, _ args: [String], timeout: Double = 120, environment: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Peers.path(tool) ?? tool)
        p.arguments = args
        p.environment = Self.environment.merging(environment) { $1 }
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let outPath = path("run-\(UUID().uuidString.prefix(6)).out")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        let out = FileHandle(forWritingAtPath: outPath)!
        p.standardOutput = out
        p.standardError = out
        try p.run()
        processes.append(p)
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            Issue.record("\(tool) \(args) timed out after \(timeout) s")
        }
        p.waitUntilExit()
        try? out.close()
        return Result(status: p.terminationStatus, output: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "")
    }

    /// Runs a python3-libnbd script with nbdsh; `$uri` is passed in the environment.
    @discardableResult
    func nbdsh(_ uri: String, _ script: String, timeout: Double = 120) throws -> Result {
        let file = path("script-\(UUID().uuidString.prefix(6)).py")
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        return try run("nbdsh", ["-c", "import os", "-c", "exec(open('\(file)').read())"], timeout: timeout, environment: ["uri": uri])
    }

    /// Waits until a Unix socket or pid file exists.
    func waitFor(_ file: String, timeout: Double = 15) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !FileManager.default.fileExists(atPath: file) {
            guard Date() < deadline else { throw HarnessError.timeout(file) }
            usleep(10_000)
        }
    }

    /// Waits until something accepts TCP connections on 127.0.0.1:port.
    func waitForPort(_ port: Int, timeout: Double = 15) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !tcpConnects(port) {
            guard Date() < deadline else { throw HarnessError.timeout("port \(port)") }
            usleep(20_000)
        }
    }

    /// nbdkit on a Unix socket in the scratch dir, with its log filter writing `name`.log.
    /// Returns the socket path.
    @discardableResult
    func nbdkit(_ args: [String], name: String = "nbdkit", logFilter: Bool = true) throws -> String {
        try Peers.require("nbdkit")
        let sock = path("\(name).sock")
        var a = ["-f", "--exit-with-parent", "-U", sock]
        if logFilter { a += ["--filter=log"] }
        a += args
        if logFilter { a += ["logfile=\(path("\(name).log"))"] }
        try start("nbdkit", a, name: name)
        try waitFor(sock)
        return sock
    }

    /// An in-process proxy in front of `upstream`, logging in nbdkit format to proxy.log.
    /// `listen` defaults to a Unix socket in the scratch dir; `idlePoll` to the CLI's default.
    func proxy(upstream: NBDURI.Endpoint, name: String = "proxy", logFormat: LogFormat = .nbdkit,
               listen: NBDURI.Endpoint? = nil, idlePoll: Int? = nil, splice: Bool = true, direct: Bool = true,
               pcap: PcapRecorder? = nil) throws -> RunningProxy {
        let sink = try LogSink.open(path("\(name).log"))
        var config = ProxyConfiguration(listen: listen ?? .unix(path: path("\(name).sock")), upstream: upstream, logFormat: logFormat)
        if let idlePoll { config.idlePollMicroseconds = idlePoll }
        config.splicePayloads = splice
        config.directRelay = direct
        let server = ProxyServer(config: config, sink: sink, threads: 2)
        server.pcap = pcap
        let bound = try server.start()
        return RunningProxy(server: server, sink: sink, endpoint: bound, logPath: path("\(name).log"))
    }
}

enum HarnessError: Error { case timeout(String) }

/// An nbd-server 3.24 configuration: one export `export1` of `disk` with flush, FUA and
/// trim, and a transaction log (its record of every request) at `log`.
func nbdServerConfig(port: Int, disk: String, log: String) -> String {
    """
    [generic]
        port = \(port)
        listenaddr = 127.0.0.1
        allowlist = true
    [export1]
        exportname = \(disk)
        flush = true
        fua = true
        trim = true
        transactionlog = \(log)
    """
}

/// 127.0.0.1:`port`, for the socket calls below.
func loopbackAddress(_ port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    return addr
}

/// `call` (bind, connect) on `fd` with 127.0.0.1:`port`; its result.
func withLoopback(_ fd: Int32, _ port: Int, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
    var addr = loopbackAddress(port)
    return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
}

func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    _ = withLoopback(fd, 0, bind)
    var addr = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

func tcpConnects(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    return withLoopback(fd, port, connect) == 0
}

/// A proxy started in-process by a test; `stop()` shuts it down gracefully and flushes the log.
final class RunningProxy {
    let server: ProxyServer
    let sink: LogSink
    let endpoint: NBDURI.Endpoint
    let logPath: String
    var stopped = false

    init(server: ProxyServer, sink: LogSink, endpoint: NBDURI.Endpoint, logPath: String) {
        self.server = server
        self.sink = sink
        self.endpoint = endpoint
        self.logPath = logPath
    }

    func uri(_ export: String = "") -> String { NBDURI(endpoint: endpoint, exportName: export).description }

    func stop() {
        guard !stopped else { return }
        stopped = true
        server.shutdown()
        sink.close()
        try? server.pcap?.close()
    }

    var log: String {
        sink.flush()
        return (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    deinit { stop() }
}
