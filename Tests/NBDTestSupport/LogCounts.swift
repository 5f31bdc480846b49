import Foundation

/// Request counts per nbdkit log action and flag parameters (`Zero trim=1 fua=0 fast=1`),
/// read from log text with a regular expression: the same function counts nbdkit's own
/// log and nbdtap's, so equal counts mean the proxy saw what the server saw.
public func requestCounts(_ log: String, actions: Set<String> = ["Read", "Write", "Flush", "Trim", "Zero", "Extents", "Cache"]) -> [String: Int] {
    let re = try! NSRegularExpression(pattern: #"^\S+ \S+ connection=\d+ (\w+) id=\d+(.*) \.\.\.$"#)
    var counts: [String: Int] = [:]
    for line in log.split(separator: "\n") {
        let s = String(line)
        guard let m = re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) else { continue }
        let action = String(s[Range(m.range(at: 1), in: s)!])
        guard actions.contains(action) else { continue }
        let params = String(s[Range(m.range(at: 2), in: s)!])
            .split(separator: " ").filter { !$0.hasPrefix("offset=") && !$0.hasPrefix("count=") }.joined(separator: " ")
        counts[action + (params.isEmpty ? "" : " " + params), default: 0] += 1
    }
    return counts
}

/// Reply outcomes per action: `Zero return=-1 error=ENOTSUP`, `Read return=0`.
public func replyCounts(_ log: String) -> [String: Int] {
    let re = try! NSRegularExpression(pattern: #"^\S+ \S+ connection=\d+ \.\.\.(\w+) id=\d+.*?( return=.*)$"#)
    var counts: [String: Int] = [:]
    for line in log.split(separator: "\n") {
        let s = String(line)
        guard let m = re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) else { continue }
        counts[String(s[Range(m.range(at: 1), in: s)!]) + String(s[Range(m.range(at: 2), in: s)!]), default: 0] += 1
    }
    return counts
}

/// Request counts per action alone (`Write`, `Zero`), for servers whose own record names
/// the command but not its flags.
public func actionCounts(_ log: String) -> [String: Int] { actionsOnly(requestCounts(log)) }

/// Counts keyed `Action flags...` (as `requestCounts` gives them) folded to `Action`.
public func actionsOnly(_ counts: [String: Int]) -> [String: Int] {
    counts.reduce(into: [:]) { $0[String($1.key.split(separator: " ").first ?? ""), default: 0] += $1.value }
}
