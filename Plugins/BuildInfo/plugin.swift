import Foundation
import PackagePlugin

/// Writes the version (the VERSION file, the one place it is kept) and the git commit into
/// the `nbdtap` target before each build, for `nbdtap --version`: a bug report then says
/// which build it came from. A prebuild command runs every build; the script rewrites its
/// file only when the text changes, so an unchanged tree recompiles nothing.
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        let out = context.pluginWorkDirectoryURL.appendingPathComponent("generated")
        return [
            .prebuildCommand(displayName: "nbdtap version and commit",
                             executable: URL(fileURLWithPath: "/bin/sh"),
                             arguments: [root.appendingPathComponent("scripts/build-info.sh").path, root.path, out.path],
                             outputFilesDirectory: out)
        ]
    }
}
