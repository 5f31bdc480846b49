import NIOConcurrencyHelpers
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// `--pcap FILE`: both legs of every proxied connection written as TCP in one pcap file
/// (BSD loopback link type, IPv4 or IPv6 as the leg's sockets are), so tcpdump, tshark and
/// `nbdtap decode` read what the proxy relayed. Unix-socket legs have no IP addresses; they
/// get stand-ins: the client leg 127.1.0.1:P -> 127.1.0.2:10809, the upstream leg
/// 127.2.0.1:P -> 127.2.0.2:10809, with P = 20000 + the connection number (mod 40000), so
/// each connection's two legs are easy to pair.
///
/// nbdtap builds the packets itself (`PcapLegHandler` into its loop's `PcapBatch`), because
/// NIOExtras' writer allocated a buffer per packet and the batches were copied again under
/// one lock: recording cost 1.3 proxy CPU seconds per GiB against 0.23 without it.
/// `--pcap-snaplen N` keeps the headers and cuts payloads (`PcapSnapCutter`).
///
/// On the transparent relay both legs carry the same payload bytes, so by default
/// (`--pcap-payloads once`) they are recorded once, on the client leg; the upstream leg's
/// payload packets keep their headers and lengths, cut as `--pcap-snaplen` cuts them.
/// Writing the file was half of the proxy's CPU, and a GiB copied was 2 GiB of file.
public final class PcapRecorder: @unchecked Sendable {
    let file: PcapFile
    /// `--pcap-snaplen`: frames cut at this many bytes, payloads split from headers.
    public let snaplen: Int?
    /// How each connection's client and upstream legs record payloads.
    let legs: (client: PcapLegCut, upstream: PcapLegCut)
    let lock = NIOLock()
    var batches: [ObjectIdentifier: PcapBatch] = [:]

    /// The smallest snapshot length: an IPv6 leg's link, IP and TCP headers (64 bytes) and
    /// a little of what they carry.
    public static let minimumSnaplen = 80

    public struct OpenError: Error, CustomStringConvertible {
        public var path: String
        public var errno: Int32
        public var description: String { "cannot write \(path): \(String(cString: strerror(errno)))" }
    }

    /// `payloadsOnce` only for the transparent relay, where both legs carry the same bytes.
    public init(path: String, snaplen: Int? = nil, payloadsOnce: Bool = false) throws {
        precondition(snaplen.map { $0 >= Self.minimumSnaplen } ?? true)
        file = try PcapFile(path: path)
        self.snaplen = snaplen
        if let snaplen {
            legs = (.snaplen(snaplen), .snaplen(snaplen))
        } else if payloadsOnce {
            legs = (.whole, .payloadsOnOtherLeg)
        } else {
            legs = (.whole, .whole)
        }
        file.writeHeader(snaplen: snaplen)
    }

    /// The batch of `loop`, made on first use with its 100 ms flush (so `tail`-like readers
    /// and a crash lose little).
    func batch(for loop: EventLoop) -> PcapBatch {
        lock.withLock {
            if let b = batches[ObjectIdentifier(loop)] { return b }
            let b = PcapBatch(file: file)
            batches[ObjectIdentifier(loop)] = b
            loop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { _ in b.flush() }
            return b
        }
    }

    /// What one connection records with: its loop's batch and, when payloads are cut on
    /// either leg, the cutter both legs share (also the tap's observer, to learn where
    /// payloads are).
    func connection(_ id: Int, loop: EventLoop) -> PcapConnection {
        PcapConnection(id: id, batch: batch(for: loop), client: legs.client, upstream: legs.upstream,
                       cutter: legs.client.isWhole && legs.upstream.isWhole ? nil : PcapSnapCutter(cutsOpaque: snaplen != nil))
    }

    static func standIns(leg: Int, connection: Int) -> (client: SocketAddress, server: SocketAddress) {
        let port = 20000 + connection % 40000
        let client = try! SocketAddress(ipAddress: "127.\(leg).0.1", port: port)
        let server = try! SocketAddress(ipAddress: "127.\(leg).0.2", port: 10809)
        return (client, server)
    }

    /// Writes what is pending and closes the file; call once, after the event loops stopped.
    public func close() throws {
        for b in lock.withLock({ Array(batches.values) }) { b.flush() }
        try file.close()
    }
}

/// How one leg records payload bytes (WRITE and READ data).
enum PcapLegCut {
    /// Every byte.
    case whole
    /// `--pcap-snaplen`: payload packets cut at this frame length, other packets kept
    /// small enough not to be cut.
    case snaplen(Int)
    /// Payload packets cut after their TCP header (lengths and sequence numbers whole):
    /// the other leg records the same bytes.
    case payloadsOnOtherLeg

    var isWhole: Bool {
        switch self {
        case .whole: return true
        case .snaplen, .payloadsOnOtherLeg: return false
        }
    }
}
