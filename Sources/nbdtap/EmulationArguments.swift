import ArgumentParser
import NBDEmulation

/// The legacy-peer emulation options of `nbdtap proxy` (see Docs/emulation.md), handed to
/// NBDEmulation's parser as the tokens the user typed so both spell them alike.
struct EmulationArguments: ParsableArguments {
    @Option(name: .long, help: "Hide transmission flags: fast-zero, write-zeroes, trim, fua, flush, cache, df, multi-conn, rotational, block-status-payload.")
    var mask: [String] = []

    @Flag(name: .customLong("read-only"), help: "Show the export read-only; writes get EPERM from nbdtap.")
    var readOnly = false

    @Flag(name: .customLong("no-structured-replies"), help: "Refuse NBD_OPT_STRUCTURED_REPLY (ERR_UNSUP).")
    var noStructuredReplies = false
    @Flag(name: .customLong("no-meta-contexts"), help: "Refuse LIST/SET_META_CONTEXT.")
    var noMetaContexts = false
    @Flag(name: .customLong("no-extended-headers"), help: "Refuse NBD_OPT_EXTENDED_HEADERS.")
    var noExtendedHeaders = false
    @Flag(name: .customLong("no-go"), help: "Refuse INFO and GO, so clients fall back to EXPORT_NAME.")
    var noGo = false
    @Flag(name: .customLong("no-list"), help: "Refuse NBD_OPT_LIST.")
    var noList = false
    @Flag(name: .customLong("no-tls"), help: "Refuse NBD_OPT_STARTTLS.")
    var noTLS = false

    @Option(name: .long, help: "none | emulate | notrim | plugin (as nbdkit's nozero filter).")
    var zeromode: String?
    @Option(name: .long, help: "none | slow | ignore | default (as nbdkit's nozero filter).")
    var fastzeromode: String?
    @Option(name: .long, help: "A profile from `nbdtap profiles`.")
    var emulate: String?

    @Option(name: .customLong("mask-handshake"), help: "Hide handshake flags: fixed-newstyle, no-zeroes.")
    var maskHandshake: String?
    @Option(name: .long, help: "oldstyle: show the client an oldstyle server while nbdtap negotiates newstyle upstream.")
    var handshake: String?

    var tokens: [String] {
        var t: [String] = []
        for m in mask { t += ["--mask", m] }
        if readOnly { t.append("--read-only") }
        if noStructuredReplies { t.append("--no-structured-replies") }
        if noMetaContexts { t.append("--no-meta-contexts") }
        if noExtendedHeaders { t.append("--no-extended-headers") }
        if noGo { t.append("--no-go") }
        if noList { t.append("--no-list") }
        if noTLS { t.append("--no-tls") }
        if let zeromode { t += ["--zeromode", zeromode] }
        if let fastzeromode { t += ["--fastzeromode", fastzeromode] }
        if let emulate { t += ["--emulate", emulate] }
        if let maskHandshake { t += ["--mask-handshake", maskHandshake] }
        if let handshake { t += ["--handshake", handshake] }
        return t
    }

    /// The options, or a usage error naming what is wrong or not available yet.
    func options() throws -> EmulationOptions {
        let o: EmulationOptions
        do {
            o = try EmulationOptions(arguments: tokens)
        } catch {
            throw ValidationError("\(error)")
        }
        return o
    }
}
