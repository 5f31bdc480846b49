/// Option values are matched case-insensitively and with `_` read as `-`: nbdkit's own
/// logs write `fast_zero`, and a user copying from them should not get an error.
/// (No Foundation here: the policy layer stays free of it.)
func normalizedArgument(_ value: String) -> String {
    String(value.lowercased().map { $0 == "_" ? "-" : $0 })
}
