import ArgumentParser
import NBDProtocol
import NBDReport

extension LogFormat: ExpressibleByArgument {}
extension StatsFormat: ExpressibleByArgument {}

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
