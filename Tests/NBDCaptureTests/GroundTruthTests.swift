import Foundation
import NBDCapture
import NBDConversation
import NIOCore
import Testing

/// Every recorded session, reassembled here, must equal the transcripts written by the
/// independent Python reassembler (scripts/pcap-to-transcript.py): same bytes per
/// direction and, record by record, the same frame times.
struct GroundTruthTests {
    static let sessions: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: capturesDir.path)) ?? []
        // Complete captures only: mid-session and dropped-packets are damaged on purpose and
        // have tests of their own (DecodeGroundTruthTests).
        return names.filter {
            FileManager.default.fileExists(atPath: capturesDir.appendingPathComponent($0).appendingPathComponent("session.pcap").path)
                && !["mid-session", "dropped-packets"].contains($0)
        }.sorted()
    }()

    @Test func capturesArePresent() {
        #expect(GroundTruthTests.sessions.count >= 10)
    }

    @Test(arguments: GroundTruthTests.sessions)
    func pcapMatchesTranscripts(_ name: String) throws {
        let dir = capturesDir.appendingPathComponent(name)
        let (run, status) = try readCapture(dir.appendingPathComponent("session.pcap").path)
        #expect(status == .endOfFile)
        let expected = try transcriptsByConnection(dir, run.connections)
        #expect(run.connections.count == expected.count)
        #expect(run.counters.gaps == 0)
        for info in run.connections {
            #expect(info.synSeen && info.roles == .handshake)
            let t = try #require(expected[info.id], "\(name): no transcript for connection \(info.id)")
            for d in [StreamDirection.clientToServer, .serverToClient] {
                let got = run.stream(info.id, d)
                let want = Array(t.stream(d).readableBytesView)
                #expect(got.count == want.count, "\(name) #\(info.id) \(d.label)")
                #expect(got == want, "\(name) #\(info.id) \(d.label)")
            }
            #expect(records(of: run, info.id) == t.records.map(Rec.init), "\(name) #\(info.id) records")
            #expect(run.ends(info.id).count == 2, "\(name) #\(info.id): both directions end")
        }
    }

    /// The pcapng form of a capture (converted by tshark at test time) gives the same events.
    @Test func pcapngGivesSameStreams() throws {
        let tmp = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let source = capturesDir.appendingPathComponent("nbdinfo-list/session.pcap").path
        let ng = tmp.appendingPathComponent("session.pcapng").path
        try #require(try runTool("/usr/bin/tshark", ["-r", source, "-w", ng, "-F", "pcapng"]) == 0)
        let head = try #require(FileHandle(forReadingAtPath: ng)?.readData(ofLength: 4))
        #expect(Array(head) == [0x0a, 0x0d, 0x0d, 0x0a])
        let (a, sa) = try readCapture(source)
        let (b, sb) = try readCapture(ng)
        #expect(sa == .endOfFile && sb == .endOfFile)
        #expect(summary(a) == summary(b))
        #expect(a.connections == b.connections)
    }

    /// A nanosecond-precision pcap keeps its nanoseconds (converted with editcap at test time).
    @Test func nanosecondPcapKeepsPrecision() throws {
        let tmp = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let source = capturesDir.appendingPathComponent("oldstyle/session.pcap").path
        let ns = tmp.appendingPathComponent("ns.pcap").path
        try #require(try runTool("/usr/bin/editcap", ["-F", "nsecpcap", source, ns]) == 0)
        let head = try #require(FileHandle(forReadingAtPath: ns)?.readData(ofLength: 4))
        #expect(Array(head) == [0x4d, 0x3c, 0xb2, 0xa1])
        let (a, _) = try readCapture(source)
        let (b, sb) = try readCapture(ns)
        #expect(sb == .endOfFile)
        #expect(summary(a) == summary(b))
        // Shift every frame by 123 ns: the times must follow exactly.
        let shifted = tmp.appendingPathComponent("shifted.pcap").path
        try #require(try runTool("/usr/bin/editcap", ["-F", "nsecpcap", "-t", "0.000000123", source, shifted]) == 0)
        let (c, _) = try readCapture(shifted)
        let ta = a.events.compactMap { if case let .data(_, _, _, _, t) = $0 { return t } else { return nil } }
        let tc = c.events.compactMap { if case let .data(_, _, _, _, t) = $0 { return t } else { return nil } }
        #expect(ta.count == tc.count && !ta.isEmpty)
        #expect(zip(ta, tc).allSatisfy { $1 == $0 + 123 })
    }
}

/// One transcript record, comparable: direction, microseconds, bytes.
struct Rec: Equatable, CustomStringConvertible {
    var direction: StreamDirection
    var micros: UInt64
    var bytes: [UInt8]
    init(_ r: Transcript.Record) {
        direction = r.direction
        micros = r.time / 1000
        bytes = Array(r.bytes.readableBytesView)
    }
    init(direction: StreamDirection, micros: UInt64, bytes: [UInt8]) {
        self.direction = direction
        self.micros = micros
        self.bytes = bytes
    }
    var description: String { "\(direction.label)@\(micros):\(bytes.count)" }
}

/// Data events of one connection merged per frame, as the Python tool writes records.
func records(of run: Run, _ id: Int) -> [Rec] {
    var out: [Rec] = []
    var lastFrame = -1
    for case let .data(c, d, b, frame, time) in run.events where c == id {
        if frame == lastFrame, out.last?.direction == d {
            out[out.count - 1].bytes += Array(b.readableBytesView)
        } else {
            out.append(Rec(direction: d, micros: time / 1000, bytes: Array(b.readableBytesView)))
        }
        lastFrame = frame
    }
    return out
}

/// Per connection, both streams and the frame of each data event.
func summary(_ run: Run) -> [String] {
    run.connections.flatMap { info in
        [StreamDirection.clientToServer, .serverToClient].map { d in
            let frames = run.events.compactMap { e -> Int? in
                if case let .data(c, dd, _, f, _) = e, c == info.id, dd == d { return f } else { return nil }
            }
            return "\(info.id) \(d.label) \(run.stream(info.id, d).hashValue) \(frames)"
        }
    }
}

/// The transcript of each connection id: `session.nbdt` for one connection,
/// `session.K.nbdt` by SYN order, and for the proxy chain the names in its ports.txt.
func transcriptsByConnection(_ dir: URL, _ connections: [ConnectionInfo]) throws -> [Int: Transcript] {
    func load(_ file: String) throws -> Transcript {
        try Transcript(parsing: ByteBuffer(bytes: try Data(contentsOf: dir.appendingPathComponent(file))))
    }
    let fm = FileManager.default
    if fm.fileExists(atPath: dir.appendingPathComponent("session.nbdt").path) {
        return [1: try load("session.nbdt")]
    }
    let ports = dir.appendingPathComponent("ports.txt")
    if fm.fileExists(atPath: ports.path) {
        // "client port 41087 (qemu-nbd), upstream port 34131 (nbdkit)"
        let words = try String(contentsOf: ports, encoding: .utf8).split(whereSeparator: { !$0.isLetter && !$0.isNumber })
        var byPort: [UInt16: String] = [:]
        for i in 0..<(words.count - 2) where words[i + 1] == "port" {
            if let p = UInt16(words[i + 2]) { byPort[p] = "session-\(words[i]).nbdt" }
        }
        var out: [Int: Transcript] = [:]
        for c in connections {
            if let f = byPort[c.server.port] { out[c.id] = try load(f) }
        }
        return out
    }
    var out: [Int: Transcript] = [:]
    var k = 1
    while fm.fileExists(atPath: dir.appendingPathComponent("session.\(k).nbdt").path) {
        out[k] = try load("session.\(k).nbdt")
        k += 1
    }
    return out
}
