import NBDEmulation
import NIOCore
import NIOEmbedded

/// Drives the emulation relay (`EmulationEngine`, the proxy's message-by-message editing)
/// with bytes from both sides and no sockets, for the fuzz target FuzzRelay: each record
/// goes through the very code a proxied connection runs, and whatever the engine writes to
/// either side is checked only for being bounded.
public enum EmulationHarness {
    /// Returns the number of bytes the engine would have written to the two sides.
    @discardableResult
    public static func run(options: EmulationOptions, records: [(fromUpstream: Bool, bytes: ByteBuffer)]) -> Int {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        let session = ProxySession(id: 1, client: channel, logFormat: .nbdkit, sink: nil, stats: StatsRegistry(), halfCloseSeconds: 0) { _ in }
        let engine = EmulationEngine(options: options)
        session.engine = engine
        var written = 0
        for r in records {
            let out = r.fromUpstream ? engine.fromUpstream(r.bytes, session: session) : engine.fromClient(r.bytes, session: session)
            written += out.toUpstream.reduce(0) { $0 + $1.readableBytes } + out.toClient.reduce(0) { $0 + $1.readableBytes }
            if out.close != nil { break }
        }
        return written
    }
}
