/// What the proxy itself knows about a connection and the conversation's events do not
/// say: that it was accepted, that it is gone, that its upstream could not be reached.
/// For `--metrics` (open connections, connect failures) without NBDProxy depending on a
/// metrics library: the fuzz targets build NBDProxy and stay lean. Called from the
/// connections' event loops at once, hence `Sendable`; each call must be cheap.
public protocol ProxyLifecycleObserver: AnyObject, Sendable {
    /// A client was accepted as connection `connection` (counted as the statistics'
    /// `connections` are: refused ones too).
    func connectionOpened(_ connection: Int)
    /// Connection `connection` ended, after its last events reached the observers.
    func connectionClosed(_ connection: Int)
    /// The upstream connection for `connection` could not be made (the client is told why).
    func upstreamConnectFailed(_ connection: Int)
}
