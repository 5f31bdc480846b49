import ArgumentParser

@main
struct NBDTap: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nbdtap",
        abstract: "A transparent NBD proxy, legacy-peer emulator, request logger and capture decoder.",
        subcommands: [ProxyCommand.self, DecodeCommand.self, ProfilesCommand.self, DemoCommand.self]
    )
}
