/// Quotes a string the way nbdkit's log filter does (its shell_quote): bare when every
/// character is shell-safe, otherwise double-quoted with `$ \` " \\` escaped, and `""`
/// when empty. Scripts that parse nbdkit logs depend on exactly this.
enum ShellQuote {
    static func isSafe(_ u: Unicode.Scalar) -> Bool {
        switch u {
        case "a"..."z", "A"..."Z", "0"..."9", "$", "%", "+", ",", "-", ".", "/", ":", "=", "@", "_": return true
        default: return false
        }
    }

    static func quote(_ s: String) -> String {
        if s.isEmpty { return "\"\"" }
        if s.unicodeScalars.allSatisfy(isSafe) { return s }
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "$", "`", "\"", "\\": out += "\\"
            default: break
            }
            out.unicodeScalars.append(u)
        }
        return out + "\""
    }
}
