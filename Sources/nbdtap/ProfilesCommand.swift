import ArgumentParser
import NBDEmulation

/// `nbdtap profiles`: the legacy-peer presets, what each hides or refuses, and the
/// measurements or documents behind it.
struct ProfilesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profiles",
        abstract: "List the legacy-peer profiles: what each masks or refuses, and where its facts come from."
    )

    @Argument(help: "Show only this profile.")
    var name: String?

    func run() throws {
        let chosen: [Profile]
        if let name {
            guard let p = Profile.named(name) else {
                throw ValidationError("no profile \(name); known: \(Profile.all.map(\.name).joined(separator: ", "))")
            }
            chosen = [p]
        } else {
            chosen = Profile.all
        }
        print(chosen.map(\.listing).joined(separator: "\n\n"))
    }
}
