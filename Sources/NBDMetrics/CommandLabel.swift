import NBDProtocol
import NBDReport

/// The `command` label: a `CommandSeries` by its name as the statistics use it, and one
/// `UNKNOWN` for every value the spec does not name. The statistics keep each unknown
/// value apart; a metric cannot, or a client sending random command numbers would make up
/// to 65,536 series.
enum CommandLabel {
    static func name(_ index: Int) -> String {
        index == CommandSeries.unknownIndex ? "UNKNOWN" : NBDCommand(rawValue: UInt16(index)).name
    }

    /// Every value `errno` gives, and ENOTCONN (an abandoned request).
    static let errnoNames: [String] = [ErrorValue.eperm, .eio, .enomem, .einval, .enospc, .eoverflow, .enotsup, .eshutdown].map(\.name)
        + ["ENOTCONN", "EUNKNOWN"]

    /// The `errno` label: the spec's names as the statistics use them, and one `EUNKNOWN`
    /// for values the spec does not name, which a server could otherwise make into 2^32
    /// series.
    static func errno(_ e: ErrorValue) -> String {
        switch e {
        case .ok, .eperm, .eio, .enomem, .einval, .enospc, .eoverflow, .enotsup, .eshutdown: return e.name
        case .unknown: return "EUNKNOWN"
        }
    }
}
