import Foundation
import NBDConversation
import NBDReport
import Testing

/// Holes in a row are one log line: a payload that a capture cut packet by packet (a
/// snapshot length, or the upstream leg of a payloads-once recording) reads as one gap, not
/// one line per packet. An event between holes, or a hole from the other side, ends the run.
struct GapLineTests {
    func gap(_ d: StreamDirection, _ n: UInt64, at t: UInt64) -> ConversationEvent {
        ConversationEvent(direction: d, streamOffset: 0, time: t, kind: .gap(missing: n))
    }

    func closed(_ d: StreamDirection, at t: UInt64) -> ConversationEvent {
        ConversationEvent(direction: d, streamOffset: 0, time: t, kind: .closed)
    }

    func lines(_ format: LogFormat, _ events: [ConversationEvent]) -> [String] {
        var log = ConnectionLog(connection: 3, format: format)
        var out: [UInt8] = []
        for e in events { log.append(e, to: &out) }
        log.appendDisconnect(time: 9_000, to: &out)
        return String(decoding: out, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func holesInARowAreOneLine() {
        let events = [gap(.clientToServer, 65_495, at: 1_000), gap(.clientToServer, 65_495, at: 2_000),
                      gap(.clientToServer, 10, at: 3_000),
                      gap(.serverToClient, 7, at: 4_000),
                      closed(.clientToServer, at: 5_000),
                      gap(.serverToClient, 1, at: 6_000)]
        let text = lines(.nbdkit, events)
        #expect(text == [
            "1970-01-01 00:00:00.000001 connection=3 Gap from=client missing=131000 holes=3",
            "1970-01-01 00:00:00.000004 connection=3 Gap from=server missing=7",
            "1970-01-01 00:00:00.000006 connection=3 Gap from=server missing=1",
            "1970-01-01 00:00:00.000009 connection=3 Disconnect transactions=0",
        ])
        let json = lines(.json, events).compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let gaps = json.filter { $0["event"] as? String == "gap" }
        #expect(gaps.map { $0["missing_bytes"] as? Int } == [131_000, 7, 1])
        #expect(gaps.map { $0["holes"] as? Int } == [3, nil, nil])
        #expect(gaps.map { $0["from"] as? String } == ["client", "server", "server"])
    }
}
