import Foundation
import Testing

/// Real peers the integration tests drive. With CI=true a missing tool is a failure, never
/// a silent skip; on a developer machine without them the tests are skipped by trait.
enum Peers {
    static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"

    /// qemu 10's folder, as scripts/setup unpacks it and scripts/peers reports it.
    static let qemu10Bin: String = {
        if let dir = ProcessInfo.processInfo.environment["NBDTAP_QEMU10_DIR"] { return dir + "/usr/bin" }
        return repoRoot.appendingPathComponent(".peers/qemu-10/usr/bin").path
    }()

    /// A tool of qemu 10 (qemu-img, qemu-io, qemu-nbd, qemu-storage-daemon), by full path.
    static func qemu10(_ tool: String) -> String { qemu10Bin + "/" + tool }

    static var qemu10Installed: Bool {
        ["qemu-img", "qemu-io", "qemu-nbd", "qemu-storage-daemon"].allSatisfy { FileManager.default.isExecutableFile(atPath: qemu10($0)) }
    }

    static func path(_ tool: String) -> String? {
        if tool.hasPrefix("/") { return FileManager.default.isExecutableFile(atPath: tool) ? tool : nil }
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

    /// Like `enabled`, and qemu 10 must be unpacked too.
    static func enabledWithQemu10(_ tools: String...) -> Bool {
        isCI || (qemu10Installed && tools.allSatisfy { path($0) != nil })
    }

    /// Fails the test (via #require) when qemu 10 is missing.
    static func requireQemu10(sourceLocation: SourceLocation = #_sourceLocation) throws {
        try #require(qemu10Installed, "qemu 10 is not unpacked at \(qemu10Bin): run scripts/setup", sourceLocation: sourceLocation)
    }

    /// Fails the test (via #require) when a tool is missing.
    static func require(_ tools: String..., sourceLocation: SourceLocation = #_sourceLocation) throws {
        for t in tools {
            _ = try #require(path(t), "\(t) is not installed: run scripts/setup", sourceLocation: sourceLocation)
        }
    }
}
