/// A bad `--delay`, `--error`, `--rate`, `--max-payload` or `--disconnect-after` value,
/// carrying the option, the offending text and what was expected, so the message can
/// quote all three.
public struct LayerOptionError: Error, Hashable, Sendable, CustomStringConvertible {
    public var option: String
    public var value: String
    public var expected: String

    public init(option: String, value: String, expected: String) {
        self.option = option
        self.value = value
        self.expected = expected
    }

    public var description: String { "\(option) '\(value)': expected \(expected)" }
}
