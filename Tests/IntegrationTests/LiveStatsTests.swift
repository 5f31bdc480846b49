import Foundation
import NBDTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The statistics while the proxy runs: on SIGUSR1 and every `--stats-interval` seconds,
/// open connections included, checked against nbdkit's log of the same requests.
@Suite(.enabled(if: Peers.enabled("nbdkit", "nbdsh")))
struct LiveStatsTests {
    /// Waits (up to 20 s) until `body` is true; a bound on waiting, not on speed.
    func eventually(_ body: () -> Bool) -> Bool {
        for _ in 0..<200 {
            if body() { return true }
            usleep(100_000)
        }
        return false
    }

    @Test func sigusr1AndIntervalShowOpenConnections() throws {
        let s = try Scratch()
        let up = try s.nbdkit(["memory", "16M"])
        let px = s.path("px.sock")
        let release = s.path("release")
        let proxy = try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--listen", "nbd+unix:///?socket=\(px)",
                                               "--stats", s.path("st.json"), "--stats-format", "json", "--stats-interval", "0.2"], name: "px")
        try s.waitFor(px)
        // A client that writes 5 blocks and stays connected until told to go.
        let client = try s.start("nbdsh", ["-u", "nbd+unix:///?socket=\(px)", "-c", """
            import os, time
            for i in range(5): h.pwrite(b"x" * 4096, i * 4096)
            while not os.path.exists("\(release)"): time.sleep(0.05)
            """], name: "client")
        // The interval's file shows the open connection's 5 WRITEs, as nbdkit's log does.
        var live: [String: Any] = [:]
        #expect(eventually {
            guard let d = FileManager.default.contents(atPath: s.path("st.json")),
                  let j = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return false }
            live = j
            return ((j["commands"] as? [String: Any])?["WRITE"] as? [String: Any])?["requests"] as? Int == 5
        }, "\(live)")
        #expect(live["connections"] as? Int == 1)
        #expect(requestCounts(s.contents("nbdkit.log"), actions: ["Write"]).values.reduce(0, +) == 5)
        try FileManager.default.removeItem(atPath: s.path("st.json"))
        // SIGUSR1 writes them once more (no interval needed for that; this one has both).
        kill(proxy.processIdentifier, SIGUSR1)
        #expect(eventually { FileManager.default.fileExists(atPath: s.path("st.json")) })
        _ = FileManager.default.createFile(atPath: release, contents: nil)
        #expect(eventually { !client.isRunning })
        kill(proxy.processIdentifier, SIGTERM)
        try waitForExit(proxy)
        // The final statistics: the same 5 WRITEs and the DISC.
        let final = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.path("st.json")))) as! [String: Any]
        #expect(((final["commands"] as? [String: Any])?["WRITE"] as? [String: Any])?["requests"] as? Int == 5)
        #expect(proxy.terminationStatus == 0)
    }

    @Test func sigusr1PrintsTheTableWithoutStopping() throws {
        let s = try Scratch()
        let up = try s.nbdkit(["memory", "16M"])
        let px = s.path("px.sock")
        let release = s.path("release")
        let proxy = try s.start(nbdtapBinary, ["proxy", "--upstream", "nbd+unix:///?socket=\(up)", "--listen", "nbd+unix:///?socket=\(px)"], name: "px")
        try s.waitFor(px)
        let client = try s.start("nbdsh", ["-u", "nbd+unix:///?socket=\(px)", "-c", """
            import os, time
            for i in range(3): h.pwrite(b"x" * 4096, i * 4096)
            h.flush()
            while not os.path.exists("\(release)"): time.sleep(0.05)
            for i in range(2): h.pread(4096, i * 4096)
            """], name: "client")
        #expect(eventually { requestCounts(s.contents("nbdkit.log"), actions: ["Flush"]).values.reduce(0, +) == 1 })
        kill(proxy.processIdentifier, SIGUSR1)
        #expect(eventually { s.output(of: "px").contains("total (1 connection):") }, "\(s.output(of: "px"))")
        let table = s.output(of: "px")
        #expect(table.range(of: #"WRITE\s+3\s"#, options: .regularExpression) != nil, "\(table)")
        #expect(table.range(of: #"FLUSH\s+1\s"#, options: .regularExpression) != nil, "\(table)")
        // The proxy goes on: the client's reads after the signal are served.
        _ = FileManager.default.createFile(atPath: release, contents: nil)
        #expect(eventually { !client.isRunning })
        #expect(client.terminationStatus == 0, "\(s.output(of: "client"))")
        #expect(requestCounts(s.contents("nbdkit.log"), actions: ["Read"]).values.reduce(0, +) == 2)
        kill(proxy.processIdentifier, SIGTERM)
        try waitForExit(proxy)
    }
}
