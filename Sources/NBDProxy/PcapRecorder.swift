import NIOConcurrencyHelpers
import NIOCore
import NIOExtras

/// `--pcap FILE`: both legs of every proxied connection written as TCP in one pcap file
/// (NIOExtras' pcap writer, BSD loopback link type), so tcpdump, tshark and
/// `nbdtap decode` read what the proxy relayed. Unix-socket legs have no IP addresses;
/// they get stand-ins: the client leg 127.1.0.1:P -> 127.1.0.2:10809, the upstream leg
/// 127.2.0.1:P -> 127.2.0.2:10809, with P = 20000 + the connection number (mod 40000),
/// so each connection's two legs are easy to pair.
public final class PcapRecorder: @unchecked Sendable {
    let sink: NIOWritePCAPHandler.SynchronizedFileSink
    let lock = NIOLock()
    var failed: Error?

    public init(path: String) throws {
        var box: PcapRecorder?
        sink = try NIOWritePCAPHandler.SynchronizedFileSink.fileSinkWritingToFile(path: path) { error in
            box?.lock.withLock { box?.failed = error }
        }
        box = self
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
                                   fileSink: sink.write(buffer:))
    }

    /// The handler for the upstream channel (nbdtap is the client there).
    func upstreamLegHandler(connection: Int, unix: Bool) -> NIOWritePCAPHandler {
        let (c, s) = Self.standIns(leg: 2, connection: connection)
        return NIOWritePCAPHandler(mode: .client, fakeLocalAddress: unix ? c : nil, fakeRemoteAddress: unix ? s : nil,
                                   fileSink: sink.write(buffer:))
    }

    /// Flushes and closes the file; call once, after every connection has closed.
    public func close() throws {
        try sink.syncClose()
        if let failed = lock.withLock({ failed }) { throw failed }
    }
}
