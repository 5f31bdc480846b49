import Foundation
import NBDCapture
import NBDConversation
import NIOCore
import Testing

/// Live capture through libpcap. Opening a real interface needs CAP_NET_RAW, so those
/// tests run as root only; the error paths run everywhere.
struct LiveCaptureTests {
    @Test func unknownInterfaceGivesLibpcapsMessage() {
        #expect {
            _ = try PcapSource(interface: "nbdtap-no-such-if0")
        } throws: { error in
            guard let e = error as? PcapError else { return false }
            return e.message.contains("nbdtap-no-such-if0") && e.message.count > "nbdtap-no-such-if0: ".count
        }
    }

    @Test(.enabled(if: getuid() == 0)) func badFilterGivesTheCompilersMessage() {
        #expect {
            _ = try PcapSource(interface: "lo", filter: "tcp port banana and")
        } throws: { error in
            (error as? PcapError)?.message.hasPrefix("filter \"tcp port banana and\": ") == true
        }
    }

    /// A real TCP exchange on loopback (python3 plays both peers), captured and reassembled.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")))
    func capturesAndReassemblesLoopbackTraffic() throws {
        let port = 20000 + Int(getpid() % 20000)
        let src = try PcapSource(interface: "lo", filter: "tcp port \(port)")
        #expect(src.linkType == .ethernet)
        let breaker = src.breaker
        DispatchQueue.global().asyncAfter(deadline: .now() + 20) { breaker.breakLoop() }  // never hang
        let script = """
            import socket, time
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", \(port))); s.listen(1)
            c = socket.create_connection(("127.0.0.1", \(port))); a, _ = s.accept()
            c.sendall(b"hello server"); a.recv(100); a.sendall(b"hello client"); c.recv(100)
            c.close(); a.close(); s.close()
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", script]
        try p.run()
        let r = TCPReassembler(configuration: .init(serverPorts: [UInt16(port)]))
        var run = Run()
        while run.ends(1).count < 2, let packet = src.next() {
            r.process(packet, linkType: src.linkType, into: &run.events)
        }
        p.waitUntilExit()
        breaker.breakLoop()
        while src.next() != nil {}  // anything already buffered, then the stop
        #expect(src.status == .stopped)
        let info = try #require(r.connection(1))
        #expect(info.synSeen && info.server.port == UInt16(port))
        #expect(run.stream(1, .clientToServer) == Array("hello server".utf8))
        #expect(run.stream(1, .serverToClient) == Array("hello client".utf8))
        #expect(src.statistics() != nil)
    }
}
