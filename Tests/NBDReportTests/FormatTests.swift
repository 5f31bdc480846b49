import Foundation
import NBDConversation
import NBDReport
import Testing

struct FormatTests {
    @Test func timestampsAreUTCWithMicroseconds() {
        // 2026-11-29 04:24:37.576797 UTC, the time in nbdkit's sample log (date -u -d ... +%s).
        let ns: UInt64 = 1_795_926_277_576_797_000
        #expect(Timestamp.nbdkit(ns) == "2026-11-29 04:24:37.576797")
        #expect(Timestamp.rfc3339(ns) == "2026-11-29T04:24:37.576797Z")
        #expect(Timestamp.nbdkit(0) == "1970-01-01 00:00:00.000000")
        #expect(Timestamp.nbdkit(951_782_400_000_000_000) == "2000-02-29 00:00:00.000000")
    }

    @Test func jsonLogIsOneValidObjectPerLine() throws {
        let (text, _, _) = runTaps(try transcripts("nbdsh-all-structured"), format: .json)
        let lines = text.split(separator: "\n")
        #expect(lines.count > 30)
        var requests = 0, replies = 0
        for line in lines {
            let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(o["time"] is String && o["connection"] as? Int == 1)
            switch o["event"] as? String {
            case "request":
                requests += 1
                #expect(o["id"] is Int && o["command"] is String && o["cookie"] is String && o["offset"] is Int && o["length"] is Int && o["flags"] is [String])
            case "reply":
                replies += 1
                #expect(o["id"] is Int && o["command"] is String && o["latency_us"] is NSNumber && o.keys.contains("error"))
                if o["command"] as? String == "BLOCK_STATUS" {
                    let ext = try #require(o["extents"] as? [[String: Any]])
                    #expect(ext.first?["context"] as? String == "base:allocation")
                }
            default: break
            }
        }
        #expect(requests == 15 && replies == 14)  // DISC has no reply
        let zeroes = lines.filter { $0.contains("\"WRITE_ZEROES\"") && $0.contains("\"request\"") }
        #expect(zeroes.filter { $0.contains("\"FAST_ZERO\"") }.count == 2)
    }

    @Test func statsJSONHasTheDocumentedShape() throws {
        let (_, total, per) = runTaps(try transcripts("nbdsh-all-structured"), format: .nbdkit)
        let json = StatsFormatter.json(total: total, perConnection: per.enumerated().map { ($0.offset + 1, $0.element) })
        let o = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(o["connections"] as? Int == 1)
        let zero = try #require((o["commands"] as? [String: Any])?["WRITE_ZEROES"] as? [String: Any])
        #expect(zero["requests"] as? Int == 4)
        #expect(zero["bytes"] as? Int == 4 * 65536)
        #expect((zero["fast"] as? [String: Int]) == ["0": 2, "1": 2])
        #expect((zero["flags"] as? [String: Int]) == ["NO_HOLE": 2, "FAST_ZERO": 2])
        let lat = try #require(zero["latency_us"] as? [String: Double])
        #expect(Set(lat.keys) == ["min", "p50", "p90", "p99", "max"])
        #expect(lat["min"]! <= lat["p50"]! && lat["p50"]! <= lat["max"]!)
        let read = try #require((o["commands"] as? [String: Any])?["READ"] as? [String: Any])
        #expect((read["errors"] as? [String: Int]) == ["EINVAL": 1])
        #expect((o["per_connection"] as? [Any])?.count == 1)
        let text = StatsFormatter.text(total: total, perConnection: [])
        #expect(text.contains("WRITE_ZEROES") && text.contains("fast=1"))
    }

    @Test func histogramPercentiles() {
        var h = LatencyHistogram()
        for v in 1...1000 { h.record(UInt64(v) * 1000) }
        #expect(h.min == 1000 && h.max == 1_000_000 && h.count == 1000)
        for (p, exact) in [(50.0, 500_000.0), (90, 900_000), (99, 990_000)] {
            let got = Double(h.percentile(p))
            #expect(abs(got - exact) / exact < 0.02, "p\(p) = \(got)")
        }
    }
}
