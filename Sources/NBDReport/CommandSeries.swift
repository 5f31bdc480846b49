import NBDProtocol

/// Commands as a fixed set of series, for what must stay bounded whatever a client sends
/// (the picture's colours, the metrics' `command` label): the nine commands the spec
/// names, by wire value, and one series for every other value.
public enum CommandSeries {
    public static let count = 10
    /// The series of every command the spec does not name.
    public static let unknownIndex = 9

    @inline(__always)
    public static func index(_ c: NBDCommand) -> Int {
        switch c {
        case .read, .write, .disc, .flush, .trim, .cache, .writeZeroes, .blockStatus, .resize: return Int(c.rawValue)
        case .unknown: return unknownIndex
        }
    }
}
