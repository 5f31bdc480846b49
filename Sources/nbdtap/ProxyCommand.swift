import ArgumentParser
import Dispatch
import Foundation
import NBDMetrics
import NBDProtocol
import NIOCore
import NBDProxy
import NBDReport
import NBDTLS

struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Relay NBD connections to an upstream server, logging every request and reply.",
        discussion: """
            Examples (as in the README):
              nbdtap proxy --upstream nbd+unix:///?socket=/tmp/up.sock --log -
              nbdtap proxy --upstream nbd+unix:///?socket=/tmp/up.sock --run 'qemu-img info "$uri"'
              nbdtap proxy --upstream nbd://127.0.0.1:10810 --pcap legs.pcap --log proxy.log
              nbdtap proxy --upstream nbd+unix:///?socket=/tmp/up.sock --emulate pre-fast-zero
              nbdtap proxy --upstream nbd+unix:///?socket=/tmp/up.sock --zeromode emulate
              nbdtap proxy --upstream nbd+unix:///?socket=/tmp/q.sock --max-payload 256k --delay write=20ms --error zero=ENOSPC,every=3
              nbdtap proxy --upstream nbd+unix:///?socket=/tmp/q.sock --disconnect-after requests=100
            Layers (--delay, --error, --rate, --max-payload, --no-extents, --disconnect-after and the emulation options) stack in the order given, the first nearest the client, as nbdkit's --filter options do.
            """
    )

    @Option(name: .long, help: "Upstream server: nbd://host[:port]/export or nbd+unix:///export?socket=PATH.")
    var upstream: NBDURI

    @Option(name: .long, help: "Where to listen (default nbd://127.0.0.1:10809; with --run a private Unix socket).")
    var listen: NBDURI?

    @OptionGroup var report: ReportOptions

    @OptionGroup var plotOption: PlotOption

    @OptionGroup(title: "Legacy-peer emulation") var emulation: EmulationArguments

    @OptionGroup(title: "TLS termination") var tlsOptions: TLSArguments

    @OptionGroup(title: "Faults and shaping (layers stack in the order given, the first nearest the client)") var layers: LayerArguments

    @Option(name: .long, help: "Write both legs of every connection to FILE as a pcap (Unix-socket legs with stand-in addresses; payloads once, see --pcap-payloads).")
    var pcap: String?

    @Option(name: .customLong("pcap-snaplen"), help: ArgumentHelp("With --pcap: cut each packet at N bytes of frame, as tcpdump -s N does, with every NBD header kept: payloads (WRITE and READ data) go in packets of their own, so only their first bytes are recorded. Not with layers or TLS termination, which send other bytes than they read.", valueName: "N"))
    var pcapSnaplen: Int?

    /// How `--pcap` records payloads the two legs share.
    enum PcapPayloads: String, ExpressibleByArgument, CaseIterable {
        case once
        case both
    }

    @Option(name: .customLong("pcap-payloads"), help: ArgumentHelp("With --pcap: once (the default where it applies): on the transparent relay, where both legs carry the same bytes, WRITE and READ data are recorded on the client leg only, and the upstream leg's payload packets keep their headers and lengths (cut, as --pcap-snaplen cuts them), which halves the file. both: every byte of both legs. With layers or TLS termination the legs differ and both are recorded whole.", valueName: "once|both"))
    var pcapPayloads: PcapPayloads?

    @Option(name: .customLong("run"), help: "Captive mode: run CMD with $uri, $nbd and $unixsocket (or $host and $port) set, then exit with its status.")
    var runCommand: String?

    @Option(name: .long, help: "Event loop threads (default: one per core). Each client and its upstream connection share one.")
    var threads: Int?

    @Option(name: .customLong("idle-poll"), help: ArgumentHelp("Busy-poll up to US microseconds for the next message when a connection has at most one request in flight, instead of sleeping (0: never). Only while fewer connections than cores are open. Costs CPU while a queue-depth-1 client runs; saves a sleep and a wake-up per message.", valueName: "US"))
    var idlePoll: Int = 400

    @Option(name: .customLong("stats-interval"), help: ArgumentHelp("Also write the statistics so far every SECONDS, open connections included (SIGUSR1 does it once).", valueName: "SECONDS"))
    var statsInterval: Double?

    @Flag(name: .customLong("no-splice"), help: "Relay every payload byte through user space. By default large READ and WRITE payloads move socket to socket in the kernel (splice(2)) when nothing needs their bytes in user space (no layers, TLS termination, --pcap-payloads both or --rate; --pcap takes what it records from the kernel); the log, statistics and pcap are the same either way.")
    var noSplice = false

    @Flag(name: .customLong("no-direct"), help: "Relay every read through NIO's event loop. By default, where nothing needs the bytes (no layers, TLS termination or --rate; --pcap is told what it relays), nbdtap relays the messages that follow a read with its own system calls until the sockets are quiet, instead of one NIO wake-up per message; the log and statistics are the same either way.")
    var noDirect = false

    @Option(name: .long, help: ArgumentHelp("Serve Prometheus metrics at http://ADDR/metrics while the proxy runs; ADDR is PORT, HOST:PORT or [V6]:PORT (host 127.0.0.1 unless given). See Docs/metrics.md.", valueName: "ADDR"))
    var metrics: MetricsAddress?

    @Option(name: .customLong("handshake-timeout"), help: ArgumentHelp("Close a client that has not finished the NBD handshake after SECONDS (0: never; qemu-nbd's limit is 10).", valueName: "SECONDS"))
    var handshakeTimeout: Double = 10

    @Option(name: .customLong("idle-timeout"), help: ArgumentHelp("Close a connection with no byte either way for SECONDS (0, the default: never).", valueName: "SECONDS"))
    var idleTimeout: Double = 0

    @Option(name: .customLong("max-connections"), help: "Connections served at once; more are told why and closed.")
    var maxConnections: Int = 1024

    @Flag(name: .long, help: "No per-connection summary lines on standard error.")
    var quiet = false

    func validate() throws {
        if idlePoll < 0 || idlePoll > 100_000 { throw ValidationError("--idle-poll must be 0 to 100000 microseconds") }
        if !(0...86_400).contains(handshakeTimeout) { throw ValidationError("--handshake-timeout must be 0 to 86400 seconds, not \(handshakeTimeout)") }
        if !(0...(30 * 86_400)).contains(idleTimeout) { throw ValidationError("--idle-timeout must be 0 to 2592000 seconds, not \(idleTimeout)") }
        if let statsInterval, !(0.1...86_400).contains(statsInterval) { throw ValidationError("--stats-interval must be 0.1 to 86400 seconds, not \(statsInterval)") }
        if let pcapSnaplen {
            if pcap == nil { throw ValidationError("--pcap-snaplen needs --pcap FILE") }
            if !(PcapRecorder.minimumSnaplen...262_144).contains(pcapSnaplen) {
                throw ValidationError("--pcap-snaplen must be \(PcapRecorder.minimumSnaplen) to 262144 bytes (an IPv6 packet's headers are 64), not \(pcapSnaplen)")
            }
        }
        if pcapPayloads != nil && pcap == nil { throw ValidationError("--pcap-payloads needs --pcap FILE") }
        if pcapPayloads == .once && pcapSnaplen != nil { throw ValidationError("--pcap-payloads once and --pcap-snaplen: the snapshot length already cuts every payload") }
        if !(1...1_000_000).contains(maxConnections) { throw ValidationError("--max-connections must be 1 to 1000000, not \(maxConnections)") }
    }

    func run() throws {
        var tempDir: String?
        let listenEndpoint: NBDURI.Endpoint
        if let listen {
            listenEndpoint = listen.endpoint
        } else if runCommand != nil {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nbdtap-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            tempDir = dir
            listenEndpoint = .unix(path: dir + "/nbdtap.sock")
        } else {
            listenEndpoint = .tcp(host: "127.0.0.1", port: NBDURI.defaultPort)
        }
        if listenEndpoint.isSameAddress(as: upstream.endpoint) {
            // nbdtap would relay each connection to itself until descriptors ran out.
            warn("--listen \(NBDURI(endpoint: listenEndpoint)) is the upstream itself; refusing to relay to myself")
            throw ExitCode.failure
        }
        let sink = try report.log.map(LogSink.open)
        var config = ProxyConfiguration(listen: listenEndpoint, upstream: upstream.endpoint, logFormat: sink == nil ? nil : report.logFormat)
        config.drainSeconds = 5
        config.idlePollMicroseconds = idlePoll
        config.splicePayloads = !noSplice
        config.directRelay = !noDirect
        config.handshakeTimeoutSeconds = handshakeTimeout
        config.idleTimeoutSeconds = idleTimeout
        config.maxConnections = maxConnections
        config.policy = try layers.chain(emulation: emulation)
        config.tls = try tlsOptions.settings(upstreamURI: upstream)
        let plotRecorder = plotOption.plot.map { _ in PlotRecorder() }
        let prometheus = metrics.map { _ in PrometheusMetrics() }
        config.observer = ObserverGroup.combining([plotRecorder as (any ConversationObserver)?, prometheus].compactMap { $0 })
        config.lifecycle = prometheus
        let server = ProxyServer(config: config, sink: sink, threads: threads ?? System.coreCount)
        let transparent = config.policy.isTransparent && !config.tls.isActive
        if pcapSnaplen != nil && !transparent {
            // The cut follows the payloads the decoder finds in what nbdtap reads; layers
            // and TLS termination send other bytes (other offsets) than were read, so the
            // legs could not be cut exactly. Better no capture than one with lost headers.
            warn("--pcap-snaplen works on the transparent relay only: layers, emulation options and --tls/--upstream-tls send other bytes than nbdtap reads; drop --pcap-snaplen to record those connections whole")
            throw ExitCode.failure
        }
        if pcapPayloads == .once && !transparent {
            // The upstream leg carries what the layers or TLS made of the client's bytes,
            // not the same bytes: cutting it would lose what they changed.
            warn("--pcap-payloads once works on the transparent relay only: layers, emulation options and --tls/--upstream-tls send other bytes than nbdtap reads; drop it to record both legs whole")
            throw ExitCode.failure
        }
        let once = transparent && (pcapPayloads ?? .once) == .once
        let recorder = try pcap.map { path -> PcapRecorder in
            do { return try PcapRecorder(path: path, snaplen: pcapSnaplen, payloadsOnce: once) } catch {
                warn("\(error)")
                throw ExitCode.failure
            }
        }
        server.pcap = recorder
        if config.tls.isActive {
            var host: String?
            if case .tcp(let h, _) = config.upstream { host = h }
            do {
                server.tlsProvider = try SwiftNIOSSLProvider(config.tls, upstreamHost: host)
            } catch {
                warn("\(error)")
                throw ExitCode.failure
            }
        }
        if recorder != nil && config.tls.isActive && !quiet {
            // Whoever reads the file should know it holds what TLS protected.
            warn("--pcap records the plaintext of the TLS sessions nbdtap terminates (decrypted; keep the file as private as the keys)")
        }
        if !quiet {
            server.onConnectionClosed = { id, stats, reason in
                let errors = stats.commands.reduce(0) { $0 + $1.1.errorCount }
                warn("connection \(id) closed: \(stats.totalRequests) requests, \(errors) errors, "
                     // What nbdtap read from each side (bytes it could not deliver when a
                     // side died are counted too: "from", not "to").
                     + "\(StatsFormatter.humanBytes(stats.bytesClientToServer)) from the client, \(StatsFormatter.humanBytes(stats.bytesServerToClient)) from the server"
                     + (reason.map { "; \($0)" } ?? ""))
            }
        }
        // Bound before the proxy's socket, so that a port in use stops nbdtap before it
        // takes any connection.
        var metricsEndpoint: MetricsEndpoint?
        if let metrics, let prometheus {
            do {
                metricsEndpoint = try MetricsEndpoint.start(metrics, registry: prometheus.registry) { loop in
                    server.requestsInFlight(reportingOn: loop).map { prometheus.setRequestsInFlight($0) }
                }
            } catch {
                warn("cannot serve metrics on \(metrics): \(error)")
                throw ExitCode.failure
            }
            warn("metrics on \(metricsEndpoint?.url ?? "")")
        }
        let bound: NBDURI.Endpoint
        do {
            bound = try server.start()
        } catch {
            metricsEndpoint?.close()
            // A run-time failure, not a usage error: no usage text, exit status 1.
            warn("cannot listen on \(NBDURI(endpoint: listenEndpoint)): \(error)")
            throw ExitCode.failure
        }
        server.startLogFlusher()
        let exportName = listen?.exportName ?? upstream.exportName
        let uri = NBDURI(endpoint: bound, exportName: exportName)

        let stop = DispatchSemaphore(value: 0)
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { stop.signal() }
            s.resume()
            sources.append(s)
        }
        // The statistics so far without stopping, open connections included: on SIGUSR1
        // (as dd prints its progress) and every --stats-interval seconds, where the final
        // ones go (a --stats file is rewritten each time).
        let statsQueue = DispatchQueue(label: "nbdtap.stats")
        let statsFormat = report.statsFormat
        let statsPath = report.stats
        signal(SIGUSR1, SIG_IGN)
        let usr1 = DispatchSource.makeSignalSource(signal: SIGUSR1, queue: statsQueue)
        usr1.setEventHandler { writeStats(server.liveStats(statsFormat), to: statsPath) }
        usr1.resume()
        sources.append(usr1)
        var interval: DispatchSourceTimer?
        if let statsInterval {
            let t = DispatchSource.makeTimerSource(queue: statsQueue)
            t.schedule(deadline: .now() + statsInterval, repeating: statsInterval)
            t.setEventHandler { writeStats(server.liveStats(statsFormat), to: statsPath) }
            t.resume()
            interval = t
        }

        var exitStatus: Int32 = 0
        if let run = runCommand {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", run]
            var env = ProcessInfo.processInfo.environment
            env["uri"] = uri.description
            env["nbd"] = uri.description
            switch bound {
            case .unix(let path): env["unixsocket"] = path
            case .tcp(let host, let port):
                env["host"] = host
                env["port"] = String(port)
            }
            p.environment = env
            p.terminationHandler = { _ in stop.signal() }
            try p.run()
            stop.wait()
            if p.isRunning {
                // A signal arrived first: pass it on and wait for the command.
                p.terminate()
                p.waitUntilExit()
            }
            exitStatus = p.terminationStatus
        } else {
            warn("listening on \(uri), relaying to \(upstream)")
            stop.wait()
        }
        interval?.cancel()
        statsQueue.sync {}
        server.shutdown()
        sink?.close()
        do { try recorder?.close() } catch { warn("pcap \(pcap ?? ""): \(error)") }
        writeStats(server.stats.render(report.statsFormat), to: report.stats)
        if let plotRecorder, let path = plotOption.plot,
           !writePlot(plotRecorder.snapshot(), source: "nbdtap proxy --upstream \(upstream)", to: path), exitStatus == 0 {
            exitStatus = 1
        }
        // Last, so that a scrape after the drain still sees the final counts.
        metricsEndpoint?.close()
        if let tempDir { try? FileManager.default.removeItem(atPath: tempDir) }
        _ = sources
        if exitStatus != 0 { throw ExitCode(exitStatus) }
    }
}
