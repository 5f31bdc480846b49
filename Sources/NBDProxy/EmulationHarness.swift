import NBDEmulation
import NIOCore
import NIOEmbedded

/// Drives the policy relay (`PolicyEngine`, the proxy's message-by-message editing) with
/// bytes from both sides and no sockets, for the fuzz target FuzzRelay: each record goes
/// through the very code a proxied connection runs, wake-ups included (run at once, as
/// if every delay had passed), and whatever the engine writes to either side is checked
/// only for being bounded.
public enum EmulationHarness {
    /// Returns the number of bytes the engine would have written to the two sides.
    @discardableResult
    public static func run(options: EmulationOptions, records: [(fromUpstream: Bool, bytes: ByteBuffer)]) -> Int {
        run(chain: PolicyChain([.emulate(options)]), records: records)
    }

    @discardableResult
    public static func run(chain: PolicyChain, records: [(fromUpstream: Bool, bytes: ByteBuffer)]) -> Int {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        let session = ProxySession(id: 1, client: channel, logFormat: .nbdkit, sink: nil, stats: StatsRegistry(), halfCloseSeconds: 0) { _ in }
        let engine = PolicyEngine(chain: chain)
        session.engine = engine
        var written = 0
        for r in records {
            var out = r.fromUpstream ? engine.fromUpstream(r.bytes, session: session) : engine.fromClient(r.bytes, session: session)
            if out.close == nil, engine.wakeAt != nil {
                engine.wakeAt = nil
                let later = engine.resume(session: session)
                out.toClient += later.toClient
                out.toUpstream += later.toUpstream
                out.close = later.close
            }
            written += out.toUpstream.reduce(0) { $0 + $1.readableBytes } + out.toClient.reduce(0) { $0 + $1.readableBytes }
            if out.close != nil { break }
        }
        return written
    }
}
