import FuzzSupport
import Foundation
import NBDCapture
import NBDReport

/// The pcap and pcapng readers, link layers, TCP reassembly and the sessions built on
/// them, from a file in memory-backed /dev/shm: nbdtap's own reader of mapped files,
/// decoding in place (payload passed over by count), and libpcap with the packets view
/// on, so every frame's bytes are copied and the packets view runs too. Every port is
/// tried as NBD.
let path = "/dev/shm/nbdtap-fuzz-pcap-\(getpid())"
/// Removed at exit: each run's file would otherwise stay in memory until the next boot.
let removeAtExit: Void = { atexit { unlink(path) }; return () }()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    _ = removeAtExit
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes: data, count: size)) else { return 0 }
    var text: [UInt8] = []
    if let reader = try? CaptureReader(file: path, reader: .mapped) {
        let sessions = CaptureSessions(logFormat: .nbdkit, serverPorts: [10809, 0])
        while reader.step(sessions: sessions, out: &text) {
            if text.count > 1 << 20 { text.removeAll(keepingCapacity: true) }
        }
        sessions.finish(out: &text)
    }
    text.removeAll(keepingCapacity: true)
    if let reader = try? CaptureReader(file: path, reader: .libpcap) {
        let sessions = CaptureSessions(logFormat: .nbdkit, serverPorts: [10809, 0], packetLines: true)
        reader.forEachEvent { e in
            sessions.handle(e, reader: reader.reassembler, out: &text)
            if text.count > 1 << 20 { text.removeAll(keepingCapacity: true) }
        }
        sessions.finish(out: &text)
    }
    return 0
}
