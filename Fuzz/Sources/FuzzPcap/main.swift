import FuzzSupport
import Foundation
import NBDCapture
import NBDReport

/// The pcap and pcapng readers (libpcap), link layers, TCP reassembly and the sessions
/// built on them, from a file in memory-backed /dev/shm (libpcap reads files); every port
/// is tried as NBD, and packet lines are on, so the packets view runs too.
let path = "/dev/shm/nbdtap-fuzz-pcap-\(getpid())"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes: data, count: size)),
          let reader = try? CaptureReader(file: path) else { return 0 }
    let sessions = CaptureSessions(logFormat: .nbdkit, serverPorts: [10809, 0], packetLines: true)
    var text: [UInt8] = []
    reader.forEachEvent { e in
        sessions.handle(e, reader: reader.reassembler, out: &text)
        if text.count > 1 << 20 { text.removeAll(keepingCapacity: true) }
    }
    sessions.finish(out: &text)
    return 0
}
