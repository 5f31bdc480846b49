import Foundation
import NBDTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What `nbdtap decode` accepts as input: a directory or an unreadable file is a one-line
/// error (it trapped once); pipes, process substitution, /dev/stdin and named FIFOs read
/// as files do (each was opened twice once); several files keep every connection; a
/// transcript is read record by record and a damaged one gives the results up to the fault.
@Suite struct DecodeInputTests {
    static let capture = repoRoot.appendingPathComponent("Captures/nbdsh-all-simple/session.pcap").path
    static let transcript = repoRoot.appendingPathComponent("Captures/nbdsh-all-simple/session.nbdt").path
    static let nbdkitLog = repoRoot.appendingPathComponent("Captures/nbdsh-all-simple/nbdkit.log").path

    func shell(_ s: Scratch, _ command: String) throws -> Scratch.Result {
        try s.run("/bin/bash", ["-c", command], timeout: 60)
    }

    @Test func directoryAndUnreadableFilesAreErrors() throws {
        let s = try Scratch()
        for (path, reason) in [(repoRoot.appendingPathComponent("Captures").path, "is a directory"),
                               ("/proc/self/mem", "cannot read: Input/output error"),
                               (s.path("missing.pcap"), "No such file or directory")] {
            let r = try s.run(nbdtapBinary, ["decode", path], timeout: 30)
            #expect(r.status == 1, "\(path): \(r.status) \(r.output)")
            #expect(r.output == "nbdtap: \(path): \(reason)\n", "\(r.output)")
        }
    }

    @Test func pipesAndFifosReadLikeFiles() throws {
        let s = try Scratch()
        let b = nbdtapBinary
        let file = try s.run(b, ["decode", Self.capture])
        // The file itself is checked against nbdkit's log in DecodeGroundTruthTests; each
        // pipe must give the same requests (all ten of nbdkit's log, and the READ past the
        // end that nbdkit's core refused before its log filter).
        let expected = requestCounts(file.output)
        var truth = requestCounts(try String(contentsOfFile: Self.nbdkitLog, encoding: .utf8))
        truth["Read", default: 0] += 1
        #expect(expected == truth)
        try s.run("mkfifo", [s.path("fifo")])
        for command in ["\(b) decode <(cat \(Self.capture))", "cat \(Self.capture) | \(b) decode /dev/stdin",
                        "cat \(Self.capture) > \(s.path("fifo")) & \(b) decode \(s.path("fifo"))",
                        "cat \(Self.transcript) | \(b) decode /dev/stdin"] {
            let r = try shell(s, command)
            #expect(r.status == 0, "\(command): \(r.output)")
            #expect(requestCounts(r.output) == expected, "\(command): \(r.output)")
        }
    }

    /// The first file is cut in the middle of its session (its connection stays open); the
    /// second's first connection must not take its place.
    @Test func severalFilesKeepEveryConnection() throws {
        let s = try Scratch()
        // editcap keeps whole frames: the file ends cleanly with its connection open.
        try Peers.require("editcap")
        try s.run("editcap", ["-r", Self.capture, s.path("cut.pcap"), "1-20"])
        let r = try s.run(nbdtapBinary, ["decode", "--view", "summary", "--stats-format", "json", s.path("cut.pcap"), Self.capture,
                                         repoRoot.appendingPathComponent("Captures/qemu10-map/session.pcap").path])
        #expect(r.output.contains(#""connections":4"#), "\(r.output)")
    }

    @Test func damagedTranscriptGivesResultsUpToTheFault() throws {
        let s = try Scratch()
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.transcript))
        try data.prefix(data.count * 2 / 3).write(to: URL(fileURLWithPath: s.path("cut.nbdt")))
        let r = try s.run(nbdtapBinary, ["decode", s.path("cut.nbdt"), "--log", s.path("out.log")])
        #expect(r.status == 1)
        #expect(r.output.contains("cut.nbdt: not a transcript from byte"), "\(r.output)")
        let log = s.contents("out.log")
        #expect(log.contains("Write id=1") && log.contains("Disconnect transactions="), "\(log)")
    }
}

/// Small things a person meets: a capture whose snapshot length cut every TCP header is
/// an error (it said "no NBD connection found" and exited 0), an unknown host's error
/// reads cleanly, and a pcap that cannot be written says so once.
@Suite struct DecodeAndProxyMessagesTests {
    @Test func snaplenCutHeadersIsAnError() throws {
        try Peers.require("editcap")
        let s = try Scratch()
        let capture = repoRoot.appendingPathComponent("Captures/nbdsh-all-simple/session.pcap").path
        try s.run("editcap", ["-s", "64", capture, s.path("s64.pcap")])
        let r = try s.run(nbdtapBinary, ["decode", s.path("s64.pcap")])
        #expect(r.status == 1 && r.output.contains("frames were cut before their TCP payload"), "\(r.output)")
        try s.run("editcap", ["-s", "100", capture, s.path("s100.pcap")])
        let r100 = try s.run(nbdtapBinary, ["decode", "--view", "summary", s.path("s100.pcap")])
        #expect(r100.status == 0 && r100.output.contains("bytes missing"), "\(r100.output)")
    }

    @Test(.enabled(if: Peers.enabled("nbdinfo"))) func errorTexts() throws {
        let s = try Scratch()
        let r = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd://nosuch.invalid:1", "--run", "nbdinfo --size $uri > /dev/null 2>&1"])
        #expect(r.output.contains("cannot reach the upstream nbd://nosuch.invalid:1/: getaddrinfo nosuch.invalid:1: "), "\(r.output)")
        #expect(!r.output.contains("getaddrinfo ("), "\(r.output)")
        let p = try s.run(nbdtapBinary, ["proxy", "--upstream", "nbd://127.0.0.1:1", "--pcap", s.path("no/such/dir.pcap"), "--run", "true"])
        #expect(p.status == 1 && p.output.components(separatedBy: "cannot write").count == 2, "\(p.output)")
    }
}
