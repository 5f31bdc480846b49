import NBDCapture
import NBDConversation
import NIOCore
import Testing

/// A client (port 40000) talking to a server (10809) with ISNs `cISN`/`sISN`; helpers
/// make frames at stream offsets so tests read like the scenario they describe.
struct Flow {
    var client = clientV4
    var server = serverV4
    var cISN: UInt32 = 1000
    var sISN: UInt32 = 5000

    var handshake: [[UInt8]] {
        [frame(client, server, seq: cISN, flags: .syn),
         frame(server, client, seq: sISN, ack: cISN &+ 1, flags: [.syn, .ack]),
         frame(client, server, seq: cISN &+ 1, ack: sISN &+ 1, flags: .ack)]
    }

    /// Client bytes `pattern(offset, count)` at client stream offset `offset`.
    func c(_ offset: Int, _ count: Int, flags: TCPFlags = [.ack, .psh]) -> [UInt8] {
        frame(client, server, seq: cISN &+ 1 &+ UInt32(truncatingIfNeeded: offset), ack: sISN &+ 1, flags: flags, pattern(offset, count))
    }

    func s(_ offset: Int, _ count: Int, flags: TCPFlags = [.ack, .psh]) -> [UInt8] {
        frame(server, client, seq: sISN &+ 1 &+ UInt32(truncatingIfNeeded: offset), ack: cISN &+ 1, flags: flags, pattern(offset, count))
    }

    /// FIN from the client after `offset` bytes; `ack` acknowledges that many server bytes.
    func cFIN(_ offset: Int, ackServer: Int = 0) -> [UInt8] {
        frame(client, server, seq: cISN &+ 1 &+ UInt32(offset), ack: sISN &+ 1 &+ UInt32(ackServer), flags: [.fin, .ack])
    }

    func sFIN(_ offset: Int, ackClient: Int = 0) -> [UInt8] {
        frame(server, client, seq: sISN &+ 1 &+ UInt32(offset), ack: cISN &+ 1 &+ UInt32(ackClient), flags: [.fin, .ack])
    }

    /// A pure ACK from the server acknowledging `n` client bytes (+1 for a FIN if `fin`).
    func sAck(_ n: Int, fin: Bool = false) -> [UInt8] {
        frame(server, client, seq: sISN &+ 1, ack: cISN &+ 1 &+ UInt32(n) &+ (fin ? 1 : 0), flags: .ack)
    }
}

struct ReassemblyTests {
    let f = Flow()

    @Test func inOrderStreamsAndConnectionEvent() throws {
        let run = reassemble(f.handshake + [f.c(0, 100), f.s(0, 50), f.c(100, 28)])
        let info = try #require(run.connections.first)
        #expect(run.connections.count == 1)
        #expect(info.client == clientV4 && info.server == serverV4 && info.synSeen && info.roles == .handshake)
        guard case .connection(let first) = try #require(run.events.first) else { Issue.record("first event"); return }
        #expect(first == info && first.frame == 1)
        #expect(difference(run.stream(1, .clientToServer), pattern(0, 128)) == nil)
        #expect(difference(run.stream(1, .serverToClient), pattern(0, 50)) == nil)
        #expect(run.counters.gaps == 0 && run.counters.retransmittedBytes == 0)
    }

    @Test func reorderedSegmentsAreDeliveredInSequenceWithTheFillingFramesTime() throws {
        let run = reassemble(f.handshake + [f.c(200, 100), f.c(100, 100), f.c(0, 100)])
        #expect(difference(run.stream(1, .clientToServer), pattern(0, 300)) == nil)
        #expect(run.counters.outOfOrderSegments == 2)
        let frames = run.events.compactMap { if case let .data(_, _, _, fr, _) = $0 { return fr } else { return nil } }
        #expect(frames == [6, 6, 6])  // nothing deliverable before frame 6 filled the hole
    }

    @Test func duplicatesAreDroppedAndCounted() {
        let run = reassemble(f.handshake + [f.c(0, 100), f.c(0, 100), f.c(100, 50), f.c(100, 50), f.c(300, 10), f.c(300, 10)])
        #expect(difference(run.stream(1, .clientToServer), pattern(0, 150) + pattern(300, 10)) == nil)
        #expect(run.counters.retransmittedSegments == 3)  // two delivered duplicates, one held duplicate
        #expect(run.counters.retransmittedBytes == 160)
        // At the end the held segment after the hole is delivered after a 150-byte gap.
        #expect(run.gaps(1, .clientToServer) == [150])
        #expect(difference(run.streamWithGaps(1, .clientToServer), pattern(0, 150) + [UInt8](repeating: 0xEE, count: 150) + pattern(300, 10)) == nil)
    }

    @Test func overlapsAreTrimmed() {
        // 0..<100, then 50..<150 (half old), then a held 200..<260 and an overlapping 140..<220.
        let run = reassemble(f.handshake + [f.c(0, 100), f.c(50, 100), f.c(200, 60), f.c(140, 80)])
        #expect(difference(run.stream(1, .clientToServer), pattern(0, 260)) == nil)
        #expect(run.counters.retransmittedBytes == 50 + 10 + 20)
        #expect(run.counters.gaps == 0)
    }

    @Test func holeBecomesGapWhenHeldBytesExceedTheWindow() {
        let config = TCPReassembler.Configuration(maxHeldBytesPerDirection: 1000)
        var frames = f.handshake + [f.c(0, 100)]
        // 100..<400 never arrives; 400 bytes per segment after it.
        for k in 0..<4 { frames.append(f.c(400 + 400 * k, 400)) }
        let run = reassemble(frames, configuration: config, finish: false)
        #expect(run.gaps(1, .clientToServer) == [300])
        #expect(difference(run.streamWithGaps(1, .clientToServer), pattern(0, 100) + [UInt8](repeating: 0xEE, count: 300) + pattern(400, 1600)) == nil)
        // The gap was declared at the frame that pushed the held bytes past 1000.
        let gapFrame = run.events.compactMap { if case let .gap(_, _, _, fr, _) = $0 { return fr } else { return nil } }
        #expect(gapFrame == [7])
    }

    @Test func holeBecomesGapWhenTooManySegmentsAreHeld() {
        let config = TCPReassembler.Configuration(maxHeldSegmentsPerDirection: 10)
        // 0..<1 missing, then 11 one-byte segments.
        let run = reassemble(f.handshake + (1...11).map { f.c($0, 1) }, configuration: config, finish: false)
        #expect(run.gaps(1, .clientToServer) == [1])
        #expect(difference(run.streamWithGaps(1, .clientToServer), [0xEE] + pattern(1, 11)) == nil)
    }

    @Test func holeBecomesGapWhenThePeerAcknowledgesTheFIN() {
        let frames = f.handshake + [f.c(0, 100), f.c(150, 50), f.cFIN(200)]
        let before = reassemble(frames, finish: false)
        #expect(before.gaps(1, .clientToServer).isEmpty)  // the hole may still be retransmitted
        let run = reassemble(frames + [f.sAck(100)], finish: false)
        #expect(run.gaps(1, .clientToServer).isEmpty)  // acknowledging up to the hole proves nothing
        let acked = reassemble(frames + [f.sAck(200, fin: true)], finish: false)
        #expect(acked.gaps(1, .clientToServer) == [50])
        #expect(difference(acked.streamWithGaps(1, .clientToServer), pattern(0, 100) + [UInt8](repeating: 0xEE, count: 50) + pattern(150, 50)) == nil)
        #expect(acked.ends(1).map(\.0) == [.clientToServer] && acked.ends(1).map(\.1) == [.fin])
    }

    @Test func retransmissionFillsTheHoleAfterTheFIN() {
        let run = reassemble(f.handshake + [f.c(0, 100), f.c(150, 50), f.cFIN(200), f.c(100, 50), f.sAck(200, fin: true)])
        #expect(difference(run.stream(1, .clientToServer), pattern(0, 200)) == nil)
        #expect(run.counters.gaps == 0)
        #expect(run.ends(1).count == 1)
    }

    @Test func endEventsForFINAndRST() {
        let fin = reassemble(f.handshake + [f.c(0, 10), f.s(0, 10), f.cFIN(10, ackServer: 10), f.sFIN(10, ackClient: 11)])
        #expect(fin.ends(1).map(\.0) == [.clientToServer, .serverToClient])
        #expect(fin.ends(1).allSatisfy { $0.1 == .fin })
        let rst = reassemble(f.handshake + [f.c(0, 10), frame(serverV4, clientV4, seq: 5001, ack: 1011, flags: [.rst, .ack])])
        #expect(rst.ends(1).count == 2 && rst.ends(1).allSatisfy { $0.1 == .reset })
        // Data after the reset is ignored.
        let after = reassemble(f.handshake + [frame(serverV4, clientV4, seq: 5001, flags: .rst), f.c(0, 10)])
        #expect(after.stream(1, .clientToServer).isEmpty && after.counters.segmentsAfterEnd == 1)
    }

    @Test func sequenceNumbersWrapAround() {
        var w = Flow()
        w.cISN = 0xFFFF_FF00  // the client stream crosses 2^32 after 255 bytes
        w.sISN = 0xFFFF_FFFF  // the server stream starts exactly at 0
        let run = reassemble(w.handshake + [w.c(0, 200), w.c(400, 100), w.c(200, 200), w.s(0, 100), w.c(500, 30_000), w.c(30_500, 40_000)])
        #expect(difference(run.stream(1, .clientToServer), pattern(0, 70_500)) == nil)
        #expect(difference(run.stream(1, .serverToClient), pattern(0, 100)) == nil)
        #expect(run.counters.gaps == 0)
    }

    @Test func portReuseStartsANewConnection() {
        var second = Flow()
        second.cISN = 900_000
        second.sISN = 700_000
        // First connection closes cleanly; the same 4-tuple is used again.
        let first = f.handshake + [f.c(0, 10), f.cFIN(10), f.sFIN(0, ackClient: 11), f.sAck(0)]
        let run = reassemble(first + second.handshake + [second.c(0, 20), second.s(0, 5)])
        #expect(run.connections.count == 2)
        #expect(difference(run.stream(1, .clientToServer), pattern(0, 10)) == nil)
        #expect(difference(run.stream(2, .clientToServer), pattern(0, 20)) == nil)
        #expect(difference(run.stream(2, .serverToClient), pattern(0, 5)) == nil)
        #expect(run.connections.allSatisfy { $0.synSeen })
        // A SYN with another ISN replaces a connection that never closed.
        let open = reassemble(f.handshake + [f.c(0, 10)] + second.handshake + [second.c(0, 20)])
        #expect(open.connections.count == 2 && open.stream(2, .clientToServer) == pattern(0, 20))
        // A retransmitted SYN does not.
        let again = reassemble([f.handshake[0]] + f.handshake + [f.c(0, 10)])
        #expect(again.connections.count == 1 && again.counters.retransmittedSegments == 1)
    }

    @Test func interleavedConnectionsKeepTheirOwnStreams() {
        var g = Flow()
        g.client = Endpoint(address: IPAddress(v4: 10, 0, 0, 3), port: 40001)
        g.cISN = 77
        g.sISN = 88
        var h = Flow()
        h.client = Endpoint(address: IPAddress(v4: 10, 0, 0, 1), port: 40002)
        h.cISN = 0xFFFF_FFF0
        let frames = [f.handshake[0], g.handshake[0], f.handshake[1], h.handshake[0], g.handshake[1], h.handshake[1],
                      g.c(0, 30), f.c(0, 10), h.c(10, 10), h.c(0, 10), g.s(0, 5), f.s(0, 7), g.c(30, 30)]
        let run = reassemble(frames)
        #expect(run.connections.map(\.client) == [f.client, g.client, h.client])
        #expect(run.stream(1, .clientToServer) == pattern(0, 10) && run.stream(1, .serverToClient) == pattern(0, 7))
        #expect(run.stream(2, .clientToServer) == pattern(0, 60) && run.stream(2, .serverToClient) == pattern(0, 5))
        #expect(difference(run.stream(3, .clientToServer), pattern(0, 20)) == nil)
        #expect(run.counters.connections == 3)
    }

    @Test func midConnectionStartUsesTheServerPort() throws {
        // No handshake: the server (port 10809) speaks first in the capture.
        let run = reassemble([f.s(1000, 40), f.c(500, 28), f.s(1040, 10), f.c(528, 28)])
        let info = try #require(run.connections.first)
        #expect(!info.synSeen && info.roles == .serverPort && info.client == clientV4 && info.server == serverV4)
        #expect(difference(run.stream(1, .serverToClient), pattern(1000, 50)) == nil)
        #expect(difference(run.stream(1, .clientToServer), pattern(500, 56)) == nil)
        // A pure ACK does not open a connection.
        #expect(reassemble([f.sAck(0)]).connections.isEmpty)
    }

    @Test func midConnectionWithUnknownPortsIsGuessedAndCanBeSwapped() throws {
        var u = Flow()
        u.client = Endpoint(address: IPAddress(v4: 10, 0, 0, 1), port: 2000)  // lower port, but the client
        u.server = Endpoint(address: IPAddress(v4: 10, 0, 0, 2), port: 30000)
        let r = TCPReassembler()
        var events: [CaptureEvent] = []
        let segs = [u.c(0, 4), u.s(0, 8), u.c(4, 4)]
        for (i, fr) in segs.enumerated() {
            r.process(Packet(frameNumber: i + 1, timestamp: 0, capturedLength: fr.count, originalLength: fr.count,
                             bytes: ByteBuffer(bytes: fr)), linkType: .ethernet, into: &events)
        }
        var info = try #require(r.connection(1))
        #expect(info.roles == .guessed && info.client == u.server)  // the higher port was taken for the client
        info = try #require(r.swapRoles(connection: 1))
        #expect(info.client == u.client && info.server == u.server)
        r.process(Packet(frameNumber: 4, timestamp: 0, capturedLength: 0, originalLength: 0,
                         bytes: ByteBuffer(bytes: u.s(8, 8))), linkType: .ethernet, into: &events)
        guard case let .data(_, d, b, _, _) = try #require(events.last) else { Issue.record("no data"); return }
        #expect(d == .serverToClient && Array(b.readableBytesView) == pattern(8, 8))
    }

    @Test func snaplenTruncatedPayloadIsAGapAtOnce() {
        // The IP header says 100 bytes of payload, the capture kept 30.
        let full = f.c(0, 100)
        let cut = Array(full.prefix(full.count - 70))
        let run = reassemble(f.handshake + [cut, f.c(100, 20)], finish: false)
        #expect(difference(run.streamWithGaps(1, .clientToServer), pattern(0, 30) + [UInt8](repeating: 0xEE, count: 70) + pattern(100, 20)) == nil)
        // Out of order: the cut part of a later segment is declared only once the stream reaches it.
        let later = f.c(100, 100)
        let run2 = reassemble(f.handshake + [Array(later.prefix(later.count - 60)), f.c(0, 100), f.c(200, 5)], finish: false)
        #expect(difference(run2.streamWithGaps(1, .clientToServer), pattern(0, 140) + [UInt8](repeating: 0xEE, count: 60) + pattern(200, 5)) == nil)
    }

    @Test func dataOnTheSYNIsPartOfTheStream() {
        let syn = frame(clientV4, serverV4, seq: 1000, flags: .syn, pattern(0, 16))  // TCP Fast Open
        let run = reassemble([syn, f.handshake[1], f.c(16, 16)])
        #expect(difference(run.stream(1, .clientToServer), pattern(0, 32)) == nil)
    }

    @Test func dataEventsComeInCaptureOrder() {
        let run = reassemble(f.handshake + [f.c(0, 10), f.s(0, 10), f.c(20, 10), f.s(10, 10), f.c(10, 10), f.s(20, 1)])
        let frames = run.events.compactMap { if case let .data(_, _, _, fr, _) = $0 { return fr } else { return nil } }
        #expect(frames == frames.sorted())
        #expect(difference(run.stream(1, .clientToServer), pattern(0, 30)) == nil)
    }
}

/// Connections that never close do not grow the reassembler without bound: past
/// `maxOpenConnections` the oldest is ended (both directions, `.evicted`) and forgotten.
@Suite struct EvictionTests {
    @Test func oldestConnectionIsEndedPastTheLimit() {
        var config = TCPReassembler.Configuration()
        config.maxOpenConnections = 3
        let r = TCPReassembler(configuration: config)
        var events: [CaptureEvent] = []
        for port in 1...5 {
            var payload = ByteBufferAllocator().buffer(capacity: 4)
            payload.writeString("ping")
            let seg = TCPSegment(source: Endpoint(address: IPAddress(v4: 127, 0, 0, 1), port: UInt16(40000 + port)),
                                 destination: Endpoint(address: IPAddress(v4: 127, 0, 0, 1), port: 10809),
                                 sequenceNumber: 1, acknowledgmentNumber: 0, flags: [.ack], payload: payload, missingPayloadBytes: 0)
            r.process(seg, frame: port, time: UInt64(port), into: &events)
        }
        let ends = events.compactMap { e -> (Int, EndReason)? in
            if case .end(let c, _, let reason, _, _) = e { return (c, reason) } else { return nil }
        }
        #expect(ends.map(\.0) == [1, 1, 2, 2] && ends.allSatisfy { $0.1 == .evicted }, "\(ends)")
        #expect(r.counters.evictedConnections == 2)
        #expect(r.allConnections.count == 5)
    }
}
