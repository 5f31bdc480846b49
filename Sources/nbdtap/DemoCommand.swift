import ArgumentParser
import Foundation

/// The built-in default job the README runs: nbdkit upstream, nbdtap in front, a client
/// doing every command including fast zeroes, and the log and statistics printed.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run nbdkit behind nbdtap with an nbdsh client doing every command, and show the log and statistics."
    )

    func run() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nbdtap-demo-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let upSock = dir + "/upstream.sock"
        let nbdkit = Process()
        nbdkit.executableURL = URL(fileURLWithPath: "/usr/bin/nbdkit")
        nbdkit.arguments = ["-f", "--exit-with-parent", "-U", upSock, "memory", "64M"]
        try nbdkit.run()
        defer { nbdkit.terminate(); nbdkit.waitUntilExit() }
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: upSock) { usleep(10_000) }
        let script = """
            h.add_meta_context("base:allocation")
            h.connect_uri(os.environ["uri"])
            h.pwrite(b"nbdtap" * 1000, 0)
            h.pwrite(b"x" * 4096, 65536, nbd.CMD_FLAG_FUA)
            h.pread(8192, 0)
            h.flush()
            h.trim(65536, 1 << 20)
            h.zero(65536, 2 << 20)
            h.zero(65536, 3 << 20, nbd.CMD_FLAG_NO_HOLE)
            h.zero(65536, 4 << 20, nbd.CMD_FLAG_FAST_ZERO)
            h.cache(65536, 0)
            h.block_status(8 << 20, 0, lambda ctx, off, ents, err: 0)
            h.shutdown()
            """
        let me = CommandLine.arguments[0]
        let proxy = Process()
        proxy.executableURL = URL(fileURLWithPath: me.contains("/") ? me : "/proc/self/exe")
        proxy.arguments = ["proxy", "--upstream", "nbd+unix:///?socket=\(upSock)", "--log", "-", "--quiet",
                           "--run", "nbdsh -c 'import os' -c '\(script.replacingOccurrences(of: "'", with: "'\\''"))'"]
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = "/usr/bin:" + (env["PATH"] ?? "")
        proxy.environment = env
        try proxy.run()
        proxy.waitUntilExit()
        if proxy.terminationStatus != 0 { throw ExitCode(proxy.terminationStatus) }
    }
}
