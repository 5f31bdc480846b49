/// UTC timestamps for log lines, formatted without Foundation: the proxy writes one per
/// request and reply, so this must be cheap.
public enum Timestamp {
    /// `YYYY-MM-DD HH:MM:SS.uuuuuu`, the form nbdkit's log filter prints (UTC).
    public static func nbdkit(_ nanoseconds: UInt64) -> String {
        let (date, time, micros) = split(nanoseconds)
        return "\(date) \(time).\(pad(micros, 6))"
    }

    /// RFC 3339 with microseconds, for JSON: `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`.
    public static func rfc3339(_ nanoseconds: UInt64) -> String {
        let (date, time, micros) = split(nanoseconds)
        return "\(date)T\(time).\(pad(micros, 6))Z"
    }

    static func split(_ ns: UInt64) -> (String, String, UInt64) {
        let seconds = ns / 1_000_000_000
        let micros = (ns % 1_000_000_000) / 1000
        let days = Int64(seconds / 86400)
        let secOfDay = seconds % 86400
        let (y, m, d) = civil(fromDays: days)
        let date = "\(pad(UInt64(y), 4))-\(pad(UInt64(m), 2))-\(pad(UInt64(d), 2))"
        let time = "\(pad(secOfDay / 3600, 2)):\(pad(secOfDay / 60 % 60, 2)):\(pad(secOfDay % 60, 2))"
        return (date, time, micros)
    }

    /// Proleptic Gregorian date of a day count since 1970-01-01 (the standard era-based
    /// conversion: 400-year eras of 146097 days, years starting in March).
    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    @inline(__always)
    static func pad(_ v: UInt64, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}

extension Timestamp {
    /// Nanoseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the JSON log's
    /// form (what `rfc3339` writes), for reading the log back; nil for anything else.
    public static func parseRFC3339(_ s: String) -> UInt64? {
        let b = Array(s.utf8)
        guard b.count >= 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T"),
              b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"), b.last == UInt8(ascii: "Z") else { return nil }
        func number(_ r: Range<Int>) -> Int64? {
            var v: Int64 = 0
            for i in r {
                guard (48...57).contains(b[i]) else { return nil }
                v = v * 10 + Int64(b[i] - 48)
            }
            return v
        }
        guard let y = number(0..<4), let m = number(5..<7), let d = number(8..<10), let hh = number(11..<13),
              let mm = number(14..<16), let ss = number(17..<19), (1...12).contains(m), (1...31).contains(d),
              hh < 24, mm < 60, ss < 61, y >= 1970 else { return nil }
        var fraction: UInt64 = 0
        if b[19] == UInt8(ascii: ".") {
            let digits = 20..<(b.count - 1)
            guard !digits.isEmpty, digits.count <= 9, let f = number(digits) else { return nil }
            fraction = UInt64(f)
            for _ in digits.count..<9 { fraction *= 10 }
        } else if b.count != 20 {
            return nil
        }
        let days = daysFromCivil(y, m, d)
        return UInt64(days * 86400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000 + fraction
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of `civil`).
    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
