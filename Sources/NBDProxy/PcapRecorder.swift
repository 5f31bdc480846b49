import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
#if canImport(Glibc)
import Glibc
#endif

/// `--pcap FILE`: both legs of every proxied connection written as TCP in one pcap file
/// (NIOExtras' pcap writer builds the packets, BSD loopback link type), so tcpdump,
/// tshark and `nbdtap decode` read what the proxy relayed. Unix-socket legs have no IP
/// addresses; they get stand-ins: the client leg 127.1.0.1:P -> 127.1.0.2:10809, the
/// upstream leg 127.2.0.1:P -> 127.2.0.2:10809, with P = 20000 + the connection number
/// (mod 40000), so each connection's two legs are easy to pair.
///
/// Packets are gathered under a lock and written by the event loop that produced them
/// once 1 MiB is pending. Writing on the event loop is what bounds memory: a relay
/// faster than the disk slows down instead of queueing the whole transfer (NIOExtras'
/// own file sink queues without limit).
public final class PcapRecorder: @unchecked Sendable {
    let fd: Int32
    let lock = NIOLock()
    var pending: [UInt8] = []
    var failedErrno: Int32 = 0
    static let flushThreshold = 1 << 20

    public struct OpenError: Error, CustomStringConvertible {
        public var path: String
        public var errno: Int32
        public var description: String { "cannot write \(path): \(String(cString: strerror(errno)))" }
    }

    public init(path: String) throws {
        // 0600: the capture holds every byte of block data that crossed the proxy.
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw OpenError(path: path, errno: errno) }
        pending.reserveCapacity(Self.flushThreshold * 2)
        let header = NIOWritePCAPHandler.pcapFileHeader
        pending.append(contentsOf: header.readableBytesView)
    }

    /// The packet sink handed to every NIOWritePCAPHandler.
    func write(_ packet: ByteBuffer) {
        let full: Bool = lock.withLock {
            pending.append(contentsOf: packet.readableBytesView)
            return pending.count >= Self.flushThreshold
        }
        if full { flush() }
    }

    func flush() {
        lock.withLock {
            pending.withUnsafeBytes { raw in
                var done = 0
                while done < raw.count {
                    let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                    if n < 0 {
                        if errno == EINTR { continue }
                        failedErrno = errno
                        return
                    }
                    done += n
                }
            }
            pending.removeAll(keepingCapacity: true)
        }
    }

    static func standIns(leg: Int, connection: Int) -> (SocketAddress, SocketAddress) {
        let port = 20000 + connection % 40000
        let client = try! SocketAddress(ipAddress: "127.\(leg).0.1", port: port)
        let server = try! SocketAddress(ipAddress: "127.\(leg).0.2", port: 10809)
        return (client, server)
    }

    /// The handler for the client's channel (nbdtap is the server there).
    func clientLegHandler(connection: Int, channel: Channel) -> NIOWritePCAPHandler {
        let (c, s) = Self.standIns(leg: 1, connection: connection)
        let unix = !ProxyServer.isTCP(channel)
        return NIOWritePCAPHandler(mode: .server, fakeLocalAddress: unix ? s : nil, fakeRemoteAddress: unix ? c : nil,
                                   fileSink: { [self] in write($0) })
    }

    /// The handler for the upstream channel (nbdtap is the client there).
    func upstreamLegHandler(connection: Int, unix: Bool) -> NIOWritePCAPHandler {
        let (c, s) = Self.standIns(leg: 2, connection: connection)
        return NIOWritePCAPHandler(mode: .client, fakeLocalAddress: unix ? c : nil, fakeRemoteAddress: unix ? s : nil,
                                   fileSink: { [self] in write($0) })
    }

    /// Writes what is pending and closes the file; call once, after every connection closed.
    public func close() throws {
        flush()
        Glibc.close(fd)
        let e = lock.withLock { failedErrno }
        if e != 0 { throw OpenError(path: "pcap", errno: e) }
    }
}
