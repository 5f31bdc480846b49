import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

@main
struct NBDTap: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nbdtap",
        abstract: "A transparent NBD proxy, legacy-peer emulator, fault injector, request logger, capture decoder and replayer.",
        version: "nbdtap \(BuildInfo.version) (commit \(BuildInfo.commit))",
        subcommands: [ProxyCommand.self, DecodeCommand.self, PlotCommand.self, ReplayCommand.self, ProfilesCommand.self, DemoCommand.self]
    )

    /// As ArgumentParser's, except that `replay` exits 2 on a usage error: its 1 means
    /// "some replies differed", so a script must tell the two apart (as with diff and cmp).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if CommandLine.arguments.dropFirst().first == "replay", exitCode(for: error) == .validationFailure {
                let text = fullMessage(for: error)
                fputs(text + (text.hasSuffix("\n") ? "" : "\n"), stderr)
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}
