import NBDConversation
import NIOCore

/// Graceful shutdown of one connection. The proxy starts no new request but lets the ones
/// under way finish: client bytes are relayed up to the end of the request being sent (a
/// WRITE payload can be megabytes) and no further; reading stops there, and bytes of a
/// new request that came in the same read are not relayed. Once nothing is in flight and
/// no reply payload is half relayed, the upstream gets EOF: the server closes after its
/// last reply, and that close ends the session the normal way, every byte it sent
/// delivered to the client first. (Waiting only for the reply header, as a count of
/// requests in flight would, cut a 16 MiB READ reply short.)
extension ProxySession {
    /// Client bytes still to relay to finish the request under way (0 between requests).
    /// A request header split across reads at the moment of shutdown is not finished:
    /// the server sees it truncated by the EOF.
    var clientOwed: Int {
        let seen = tap.stats.bytesClientToServer
        return clientFramedEnd > seen ? Int(clientFramedEnd - seen) : 0
    }

    /// Whether the client side should keep reading.
    var clientMayRead: Bool { !draining || clientOwed > 0 }

    func drain() {
        guard !closing, !draining else { return }
        draining = true
        note("Close", [("reason", "proxy shutting down"), ("in_flight", String(requestsInFlight))])
        endUpstreamIfQuiet()
    }

    func endUpstreamIfQuiet() {
        guard draining, !upstreamEnded, !closing else { return }
        guard requestsInFlight == 0, clientOwed == 0, serverPayloadEnd <= tap.stats.bytesServerToClient else { return }
        upstreamEnded = true
        guard let up = upstream else {
            // Still connecting: there is nothing to finish.
            close(reason: nil)
            return
        }
        up.writeAndFlush(ByteBuffer()).whenComplete { _ in up.close(mode: .output, promise: nil) }
    }
}
