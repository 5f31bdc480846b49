/// A named preset for `--emulate`: the options that make any upstream look like a given
/// server, and where each fact behind it comes from.
public struct Profile: Hashable, Sendable {
    /// The `--emulate` value.
    public var name: String
    /// One line for `nbdtap profiles`.
    public var summary: String
    /// The evidence: every claim the options encode should be traceable to one of these.
    public var sources: [ProfileSource]
    public var options: EmulationOptions

    public init(name: String, summary: String, sources: [ProfileSource], options: EmulationOptions) {
        self.name = name
        self.summary = summary
        self.sources = sources
        self.options = options
    }

    /// The profile called `name` (exact, case-insensitive).
    public static func named(_ name: String) -> Profile? {
        all.first { $0.name == name.lowercased() }
    }

    /// A few lines for `nbdtap profiles`: name and summary, the changes, the sources.
    public var listing: String {
        var lines = ["\(name): \(summary)"]
        lines += options.changes.map { "    \($0)" }
        lines.append("    equivalent to: \(options.arguments.joined(separator: " "))")
        lines += sources.map { "    source: \($0)" }
        return lines.joined(separator: "\n")
    }
}

/// Where a profile's facts come from: a tool at a version, and how it was looked at.
public struct ProfileSource: Hashable, Sendable, CustomStringConvertible {
    public var tool: String
    public var version: String
    /// The command or document, specific enough to repeat.
    public var method: String

    public init(tool: String, version: String, method: String) {
        self.tool = tool
        self.version = version
        self.method = method
    }

    public var description: String { "\(tool) \(version): \(method)" }
}
