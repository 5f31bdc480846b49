import ArgumentParser
import NBDProtocol
import NBDProxy

extension TLSSettings.Mode: ExpressibleByArgument {}

/// TLS termination options of `nbdtap proxy` (Docs/tls.md), named as nbdkit's and
/// qemu-nbd's: `--tls`, `--tls-certificates`, `--tls-verify-peer`.
struct TLSArguments: ParsableArguments {
    @Option(name: .long, help: "off | on | require: answer the client's STARTTLS and terminate TLS (require: nothing else first, NBD_REP_ERR_TLS_REQD).")
    var tls: TLSSettings.Mode = .off

    @Option(name: .customLong("tls-certificates"), help: ArgumentHelp("Directory with server-cert.pem, server-key.pem (and ca-cert.pem for --tls-verify-peer).", valueName: "DIR"))
    var tlsCertificates: String?

    @Option(name: .customLong("tls-psk"), help: ArgumentHelp("A psktool key file (username:hexkey lines): TLS with pre-shared keys instead of certificates.", valueName: "FILE"))
    var tlsPSK: String?

    @Flag(name: .customLong("tls-verify-peer"), help: "Require a client certificate signed by ca-cert.pem.")
    var tlsVerifyPeer = false

    @Option(name: .customLong("upstream-tls"), help: "off | on | require: start TLS with the upstream (nbds:// and nbds+unix:// imply require).")
    var upstreamTLS: TLSSettings.Mode?

    @Option(name: .customLong("upstream-tls-certificates"), help: ArgumentHelp("Directory with ca-cert.pem (and client-cert.pem, client-key.pem when the upstream checks clients).", valueName: "DIR"))
    var upstreamTLSCertificates: String?

    @Option(name: .customLong("upstream-tls-psk"), help: ArgumentHelp("A psktool key file for the upstream (instead of certificates).", valueName: "FILE"))
    var upstreamTLSPSK: String?

    @Option(name: .customLong("upstream-tls-username"), help: ArgumentHelp("The PSK identity for the upstream (default: the file's first user).", valueName: "NAME"))
    var upstreamTLSUsername: String?

    @Option(name: .customLong("upstream-tls-hostname"), help: ArgumentHelp("The name the upstream's certificate must carry (default: its host; localhost for a Unix socket).", valueName: "NAME"))
    var upstreamTLSHostname: String?

    func settings(upstreamURI: NBDURI) throws -> TLSSettings {
        var s = TLSSettings()
        s.client = tls
        s.clientCertificates = tlsCertificates
        s.verifyPeer = tlsVerifyPeer
        s.upstream = upstreamTLS ?? (upstreamURI.tls ? .require : .off)
        s.upstreamCertificates = upstreamTLSCertificates
        s.upstreamHostname = upstreamTLSHostname
        s.clientPSK = tlsPSK
        s.upstreamPSK = upstreamTLSPSK
        s.upstreamUsername = upstreamTLSUsername
        if s.client != .off && (tlsCertificates == nil) == (tlsPSK == nil) {
            throw ValidationError("--tls \(tls.rawValue) needs one of --tls-certificates DIR and --tls-psk FILE")
        }
        if s.upstream != .off && (upstreamTLSCertificates == nil) == (upstreamTLSPSK == nil) {
            throw ValidationError("--upstream-tls \(s.upstream.rawValue) needs one of --upstream-tls-certificates DIR (with ca-cert.pem) and --upstream-tls-psk FILE")
        }
        return s
    }
}
