/// Option values are matched case-insensitively and with `_` read as `-`: nbdkit's own
/// logs write `fast_zero`, and a user copying from them should not get an error.
/// (No Foundation here: the policy layer stays free of it.)
func normalizedArgument(_ value: String) -> String {
    String(value.lowercased().map { $0 == "_" ? "-" : $0 })
}

/// `--opt=value` as the option's name and its value; any other token as itself, no value.
func splitInlineValue(_ token: String) -> (name: String, value: String?) {
    guard token.hasPrefix("--"), let eq = token.firstIndex(of: "=") else { return (token, nil) }
    return (String(token[..<eq]), String(token[token.index(after: eq)...]))
}
