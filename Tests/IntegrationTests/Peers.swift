import Foundation
import Testing

/// Real peers the integration tests drive. With CI=true a missing tool is a failure, never
/// a silent skip; on a developer machine without them the tests are skipped by trait.
enum Peers {
    static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"

    static func path(_ tool: String) -> String? {
        for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
            let p = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Whether tests needing these tools should run: always under CI (and then fail on a
    /// missing one), otherwise only when all are installed.
    static func enabled(_ tools: String...) -> Bool {
        isCI || tools.allSatisfy { path($0) != nil }
    }

    /// Fails the test (via #require) when a tool is missing.
    static func require(_ tools: String..., sourceLocation: SourceLocation = #_sourceLocation) throws {
        for t in tools {
            _ = try #require(path(t), "\(t) is not installed: run scripts/setup", sourceLocation: sourceLocation)
        }
    }
}
