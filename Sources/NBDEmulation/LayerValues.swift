/// The value spellings the layer options share, read as nbdkit reads its filter
/// parameters: sizes with 1024-based suffixes (nbdkit_parse_size), durations in seconds
/// or with an `ms`/`us` suffix (the delay filter's `20ms`), rates as a fraction or a
/// percentage (the error filter's `error-rate`).
enum LayerValues {
    /// `256k`, `32M`, `1G`, `4096`: bytes, suffixes k/K, M, G, T (powers of 1024).
    static func size(_ text: String) -> UInt64? {
        var digits = Substring(text)
        var scale: UInt64 = 1
        if let last = digits.last, !last.isNumber {
            switch last {
            case "k", "K": scale = 1 << 10
            case "m", "M": scale = 1 << 20
            case "g", "G": scale = 1 << 30
            case "t", "T": scale = 1 << 40
            default: return nil
            }
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let n = UInt64(digits) else { return nil }
        let (v, overflow) = n.multipliedReportingOverflow(by: scale)
        return overflow ? nil : v
    }

    /// `20ms`, `1.5s`, `0.02`, `500us`: nanoseconds. A bare number is seconds, as in
    /// nbdkit's delay filter. At most an hour: a longer delay is a typo, and a timer
    /// must have a limit.
    static func duration(_ text: String) -> UInt64? {
        var number = Substring(text)
        var scale = 1e9
        for (suffix, s) in [("ms", 1e6), ("us", 1e3), ("ns", 1.0), ("s", 1e9)] where number.hasSuffix(suffix) {
            number = number.dropLast(suffix.count)
            scale = s
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              let v = Double(number), v.isFinite, v >= 0, v * scale <= 3600e9 else { return nil }
        return UInt64((v * scale).rounded())
    }

    /// `10%`, `0.1`, `1`: a probability in [0, 1].
    static func probability(_ text: String) -> Double? {
        var number = Substring(text)
        var scale = 1.0
        if number.hasSuffix("%") {
            number = number.dropLast()
            scale = 0.01
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              let v = Double(number), v.isFinite else { return nil }
        let p = v * scale
        return p >= 0 && p <= 1 ? p : nil
    }

    /// `key=value,key=value`: the pairs in order; an item without `=` has an empty key.
    static func pairs(_ text: String) -> [(key: String, value: String)] {
        text.split(separator: ",", omittingEmptySubsequences: false).map { item in
            if let eq = item.firstIndex(of: "=") {
                return (String(item[..<eq]), String(item[item.index(after: eq)...]))
            }
            return ("", String(item))
        }
    }
}
