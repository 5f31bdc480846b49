import Foundation
import NBDProtocol
import NBDReport

/// Reads nbdtap's own JSON log (`--log-format json`) back into a picture: `connect`,
/// `request` and `reply` lines, the rest passed over. Each mark's hover text is its JSON
/// lines as logged. Line by line, each at most `lineLimit` bytes, so a huge or hostile
/// file costs bounded memory.
struct JSONLogReader {
    static let lineLimit = 1 << 20

    struct Failure: Error, CustomStringConvertible {
        var line: Int
        var reason: String
        var description: String { "line \(line): \(reason)" }
    }

    /// Feeds every line of `path` to `model`; throws at the first line that is not the
    /// JSON log's, after the lines before it were taken.
    static func read(_ path: String, into model: inout PlotModel) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw Failure(line: 0, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { try? handle.close() }
        var pending = Data()
        var number = 0
        while true {
            let chunk = handle.readData(ofLength: 1 << 16)
            pending.append(chunk)
            while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                number += 1
                let line = pending[pending.startIndex..<nl]
                pending = Data(pending[(nl + 1)...])
                try take(line, number, &model)
            }
            if pending.count > lineLimit { throw Failure(line: number + 1, reason: "longer than \(lineLimit) bytes") }
            if chunk.isEmpty { break }
        }
        if !pending.isEmpty { try take(pending, number + 1, &model) }
    }

    static func take(_ line: Data, _ number: Int, _ model: inout PlotModel) throws {
        if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { return }
        guard let o = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any], let event = o["event"] as? String else {
            throw Failure(line: number, reason: "not a line of nbdtap's JSON log: \(String(decoding: line.prefix(80), as: UTF8.self))")
        }
        guard let connection = o["connection"] as? Int, let stamp = o["time"] as? String, let time = Timestamp.parseRFC3339(stamp) else {
            throw Failure(line: number, reason: "an \(event) line without connection and time")
        }
        let text = String(decoding: line, as: UTF8.self)
        switch event {
        case "connect":
            model.connected(connection, size: (o["size"] as? NSNumber)?.uint64Value ?? 0)
        case "request":
            guard let id = (o["id"] as? NSNumber)?.uint64Value, let name = o["command"] as? String,
                  let offset = (o["offset"] as? NSNumber)?.uint64Value, let length = (o["length"] as? NSNumber)?.uint64Value else {
                throw Failure(line: number, reason: "a request line without id, command, offset and length")
            }
            var flags = CommandFlags()
            for f in o["flags"] as? [String] ?? [] {
                if let known = CommandFlags.all.first(where: { $0.1 == f }) { flags.insert(known.0) }
            }
            model.request(connection, id: id, command: command(name), flags: flags, offset: offset, length: length, time: time, text: text)
        case "reply":
            guard let id = (o["id"] as? NSNumber)?.uint64Value else { throw Failure(line: number, reason: "a reply line without id") }
            let abandoned = o["abandoned"] as? Bool ?? false
            let latency = (o["latency_us"] as? NSNumber).map { UInt64(max($0.doubleValue, 0) * 1000) }
            model.completed(connection, id: id, time: time, error: o["error"] as? String, latency: abandoned ? nil : latency, text: text)
        default:
            break
        }
    }

    /// The command a log line names: the spec's names, or UNKNOWN_n.
    static func command(_ name: String) -> NBDCommand {
        for v in UInt16(0)...8 where NBDCommand(rawValue: v).name == name { return NBDCommand(rawValue: v) }
        if name.hasPrefix("UNKNOWN_"), let v = UInt16(name.dropFirst(8)) { return NBDCommand(rawValue: v) }
        return .unknown(UInt16.max)
    }
}
