import ArgumentParser
import NBDMetrics
import NBDProtocol
import NBDReport

extension LogFormat: ExpressibleByArgument {}
extension StatsFormat: ExpressibleByArgument {}

extension MetricsAddress: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

extension NBDURI: ExpressibleByArgument {
    public init?(argument: String) {
        guard let u = try? NBDURI(parsing: argument) else { return nil }
        self = u
    }
}

/// Log and statistics options shared by `proxy` and `decode`, so both name them alike.
struct ReportOptions: ParsableArguments {
    @Option(name: .long, help: "Write the request log to FILE (- for standard output).")
    var log: String?

    @Option(name: .customLong("log-format"), help: "Log format: nbdkit (nbdkit's log filter grammar) or json.")
    var logFormat: LogFormat = .nbdkit

    @Option(name: .long, help: "Write the statistics to FILE instead of standard error.")
    var stats: String?

    @Option(name: .customLong("stats-format"), help: "Statistics format: text or json.")
    var statsFormat: StatsFormat = .text
}

/// `--port`, shared by `decode` and `replay`: the TCP ports that carry NBD in a capture.
struct CapturePortOptions: ParsableArguments {
    @Option(name: .long, parsing: .upToNextOption, help: "Extra server ports to treat as NBD (10809 always is); NBD on other ports is found by content.")
    var port: [String] = []

    var serverPorts: Set<UInt16> {
        var ports: Set<UInt16> = [10809]
        for p in port.flatMap({ $0.split(separator: ",") }) { if let v = UInt16(p) { ports.insert(v) } }
        return ports
    }
}
