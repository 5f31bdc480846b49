import ArgumentParser
import Foundation
import NBDEmulation

/// The fault and shaping layers of `nbdtap proxy` (Docs/layers.md). ArgumentParser keeps
/// each option's values but not the order the options came in across different options,
/// and the order is the layers' stacking order, so the chain is built from the command
/// line's own tokens; these declarations give the help text and the usage checks.
struct LayerArguments: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Delay requests: CMD=DURATION,... (read, write, zero, trim, flush, extents, cache, all), jitter=DURATION (nbdkit's delay filter).", valueName: "SPEC"))
    var delay: [String] = []

    @Option(name: .long, help: ArgumentHelp("Fail requests: CMD=ERRNO[,rate=P][,every=N][,after=N][,range=A-B][,file=PATH][,seed=N]; repeatable, the first rule that fires wins (nbdkit's error filter).", valueName: "SPEC"))
    var error: [String] = []

    @Option(name: .long, help: ArgumentHelp("Limit bytes per second: RATE (total) or total=, connection=, read=, write=, connection-read=, connection-write=, burstiness=SECONDS (nbdkit's rate filter, in bytes).", valueName: "SPEC"))
    var rate: [String] = []

    @Option(name: .customLong("max-payload"), help: ArgumentHelp("Split READs and WRITEs longer than SIZE into pieces and show SIZE as the maximum payload (nbdkit's blocksize filter, maxdata).", valueName: "SIZE"))
    var maxPayload: [String] = []

    @Flag(name: .customLong("no-extents"), help: "Answer BLOCK_STATUS as all data (nbdkit's noextents filter).")
    var noExtents = false

    @Option(name: .customLong("disconnect-after"), help: ArgumentHelp("Drop the connection after requests=N, client-bytes=SIZE or server-bytes=SIZE, [times=K] connections.", valueName: "SPEC"))
    var disconnectAfter: [String] = []

    /// Tokens in the fixed order used when the command line is not at hand.
    var tokens: [String] {
        var t: [String] = []
        for (name, values) in [("--delay", delay), ("--error", error), ("--rate", rate), ("--max-payload", maxPayload),
                               ("--disconnect-after", disconnectAfter)] {
            for v in values { t += [name, v] }
        }
        if noExtents { t.append("--no-extents") }
        return t
    }

    /// The chain, in the order the layer and emulation options were typed, or a usage
    /// error quoting the bad value.
    func chain(emulation: EmulationArguments) throws -> PolicyChain {
        let given = emulation.tokens + tokens
        let typed = Self.typedOrder(CommandLine.arguments, matching: given)
        do {
            return try PolicyChain(arguments: typed ?? given)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The layer and emulation tokens of the command line in the order typed, if they are
    /// the same tokens as those parsed (else nil: parsed from elsewhere).
    static func typedOrder(_ arguments: [String], matching given: [String]) -> [String]? {
        let probe = (try? PolicyChain(arguments: arguments)).map { _ in arguments }
        guard let probe else { return nil }
        let parsedLayers = try? PolicyChain(arguments: given)
        let typedLayers = try? PolicyChain(arguments: probe)
        guard let parsedLayers, let typedLayers, parsedLayers.layers.count == typedLayers.layers.count,
              Set(parsedLayers.layers.map(\.name)) == Set(typedLayers.layers.map(\.name)) else { return nil }
        return probe
    }
}
