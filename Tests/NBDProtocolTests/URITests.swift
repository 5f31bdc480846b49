import NBDProtocol
import Testing

/// NBD URIs (doc/uri.md), including the query that once trapped (found by FuzzURI), and
/// which addresses count as the same for the proxy's self-loop check.
struct URITests {
    @Test func parsesTheSpecForms() throws {
        let tcp = try NBDURI(parsing: "nbd://127.0.0.1:10810/disk")
        #expect(tcp.endpoint == .tcp(host: "127.0.0.1", port: 10810) && tcp.exportName == "disk")
        let unix = try NBDURI(parsing: "nbd+unix:///e?socket=/tmp/s.sock")
        #expect(unix.endpoint == .unix(path: "/tmp/s.sock") && unix.exportName == "e")
    }

    @Test func emptyQueryKeysDoNotTrap() {
        for text in ["nbd://h/?=", "nbd+unix:///?=&socket=/s", "nbd://h/?&&=x", "nbd+unix:///?socket"] {
            _ = try? NBDURI(parsing: text)
        }
        #expect((try? NBDURI(parsing: "nbd+unix:///?=&socket=/s"))?.endpoint == .unix(path: "/s"))
    }

    @Test func sameAddress() {
        let a = NBDURI.Endpoint.tcp(host: "127.0.0.1", port: 10809)
        #expect(a.isSameAddress(as: .tcp(host: "localhost", port: 10809)))
        #expect(a.isSameAddress(as: .tcp(host: "::1", port: 10809)))
        #expect(!a.isSameAddress(as: .tcp(host: "127.0.0.1", port: 10810)))
        #expect(!NBDURI.Endpoint.tcp(host: "h", port: 0).isSameAddress(as: .tcp(host: "h", port: 0)))
        #expect(NBDURI.Endpoint.unix(path: "/a/b/../s.sock").isSameAddress(as: .unix(path: "/a//./s.sock")))
        #expect(!NBDURI.Endpoint.unix(path: "/a/s.sock").isSameAddress(as: .unix(path: "/b/s.sock")))
    }
}
