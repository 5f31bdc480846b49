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
