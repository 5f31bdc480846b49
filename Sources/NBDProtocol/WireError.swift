/// Why bytes could not be read as the NBD message they were meant to be. Each case
/// carries the offending numbers so a log line can show them.
public enum WireError: Error, Hashable, Sendable {
    /// A magic number where the spec allows only certain values.
    case badMagic(context: String, got: UInt64)
    /// A payload whose length the spec fixes or bounds, with another length.
    case badLength(context: String, length: UInt64, expected: String)
    /// A payload shorter than the structure it must hold.
    case truncated(context: String, needed: Int, available: Int)
    /// A count inside a payload that disagrees with its length.
    case inconsistent(context: String, detail: String)

    public var description: String {
        switch self {
        case .badMagic(let context, let got):
            return "\(context): bad magic 0x\(String(got, radix: 16))"
        case .badLength(let context, let length, let expected):
            return "\(context): length \(length), expected \(expected)"
        case .truncated(let context, let needed, let available):
            return "\(context): needs \(needed) bytes, has \(available)"
        case .inconsistent(let context, let detail):
            return "\(context): \(detail)"
        }
    }
}
