import NBDProtocol

/// The `command` label: the nine commands the spec names, by wire value, as the statistics
/// name them, and one `UNKNOWN` for every other value. The statistics keep each unknown
/// value apart; a metric cannot, or a client sending random command numbers would make up
/// to 65,536 series.
enum CommandLabel {
    /// Index of `unknown` in the arrays of per-command metrics.
    static let unknownIndex = 9
    static let count = 10

    @inline(__always)
    static func index(_ c: NBDCommand) -> Int {
        switch c {
        case .read, .write, .disc, .flush, .trim, .cache, .writeZeroes, .blockStatus, .resize: return Int(c.rawValue)
        case .unknown: return unknownIndex
        }
    }

    static func name(_ index: Int) -> String {
        index == unknownIndex ? "UNKNOWN" : NBDCommand(rawValue: UInt16(index)).name
    }

    /// The `errno` label: the spec's names as the statistics use them (ENOTCONN for an
    /// abandoned request), and one `EUNKNOWN` for values the spec does not name, which a
    /// server could otherwise make into 2^32 series.
    /// Every value `errno` gives, and ENOTCONN.
    static let errnoNames: [String] = [ErrorValue.eperm, .eio, .enomem, .einval, .enospc, .eoverflow, .enotsup, .eshutdown].map(\.name)
        + ["ENOTCONN", "EUNKNOWN"]

    static func errno(_ e: ErrorValue) -> String {
        switch e {
        case .ok, .eperm, .eio, .enomem, .einval, .enospc, .eoverflow, .enotsup, .eshutdown: return e.name
        case .unknown: return "EUNKNOWN"
        }
    }
}
