import NBDEmulation
import NBDProtocol
import NBDReport

/// What the proxy listens on, where it forwards, and what it records.
public struct ProxyConfiguration: Sendable {
    public var listen: NBDURI.Endpoint
    public var upstream: NBDURI.Endpoint
    public var logFormat: LogFormat?
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM or the end of --run.
    public var drainSeconds: Double = 5
    /// Seconds a connection may stay half-open after the client's EOF.
    public var halfCloseSeconds: Double = 5
    /// Large READ and WRITE payloads move socket to socket in the kernel (splice(2)) where
    /// nothing needs their bytes; false keeps every byte in user space (`--no-splice`).
    public var splicePayloads = true
    /// Small messages are relayed by a loop of nbdtap's own system calls between NIO's
    /// wake-ups where nothing needs the bytes; false relays every read through NIO
    /// (`--no-direct`).
    public var directRelay = true
    /// Busy-polling window at queue depth 1, in microseconds (0: never poll).
    public var idlePollMicroseconds = 400
    /// Seconds a client has to finish the NBD handshake (0: no limit). qemu-nbd closes such
    /// a client after 10 s; without a limit each silent client holds an upstream
    /// connection for ever.
    public var handshakeTimeoutSeconds: Double = 10
    /// Seconds a connection may pass with no byte either way (0: no limit, the default:
    /// an idle VM disk is normal).
    public var idleTimeoutSeconds: Double = 0
    /// Connections served at once; one more is told why (NBD_REP_ERR_SHUTDOWN) and closed.
    public var maxConnections = 1024
    /// The policy layers (emulation, faults, shaping), nearest the client first; with
    /// none, the relay skips the engine entirely.
    public var policy = PolicyChain()
    /// TLS termination on the client's side, the upstream's, or both.
    public var tls = TLSSettings()
    /// Sees every connection's events beside the log and statistics (`--plot`, `--metrics`).
    public var observer: (any ConversationObserver)?
    /// Told as connections open and close and when an upstream cannot be reached (`--metrics`).
    public var lifecycle: (any ProxyLifecycleObserver)?

    public init(listen: NBDURI.Endpoint, upstream: NBDURI.Endpoint, logFormat: LogFormat?) {
        self.listen = listen
        self.upstream = upstream
        self.logFormat = logFormat
    }
}
