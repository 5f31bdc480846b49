/// Minimal JSON text building for log lines and statistics: one object per line, written
/// directly into a String without an encoder round trip.
public struct JSONObject {
    public private(set) var text = "{"
    var first = true

    public init() {}

    mutating func key(_ k: String) {
        if first { first = false } else { text += "," }
        text += "\""
        text += k
        text += "\":"
    }

    public mutating func string(_ k: String, _ v: String) {
        key(k)
        JSONObject.appendQuoted(v, to: &text)
    }
    public mutating func optionalString(_ k: String, _ v: String?) {
        if let v { string(k, v) } else { raw(k, "null") }
    }
    public mutating func number<T: BinaryInteger>(_ k: String, _ v: T) {
        key(k)
        text += String(v)
    }
    public mutating func double(_ k: String, _ v: Double) {
        key(k)
        text += JSONObject.format(v)
    }
    public mutating func bool(_ k: String, _ v: Bool) { raw(k, v ? "true" : "false") }
    public mutating func strings(_ k: String, _ vs: [String]) {
        key(k)
        text += "["
        for (i, v) in vs.enumerated() {
            if i > 0 { text += "," }
            JSONObject.appendQuoted(v, to: &text)
        }
        text += "]"
    }
    /// Inserts already-formed JSON.
    public mutating func raw(_ k: String, _ json: String) {
        key(k)
        text += json
    }
    public mutating func object(_ k: String, _ o: JSONObject) { raw(k, o.finished) }

    public var finished: String { text + "}" }

    /// Three decimals are enough for microseconds and keep lines short.
    public static func format(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
        let scaled = (v * 1000).rounded() / 1000
        return String(scaled)
    }

    public static func appendQuoted(_ s: String, to out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}
