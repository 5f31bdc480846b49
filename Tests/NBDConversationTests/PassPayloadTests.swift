import NBDConversation
import NIOCore
import Testing

/// A front end that moves payload bytes without reading them (the proxy's kernel path, a
/// capture decoded in place) must get the very events that feeding them gives.
@Suite struct PassPayloadTests {
    /// Feeds each record, but passes over every byte the decoder says is payload ahead
    /// instead of feeding it; returns the events and how many bytes were passed.
    func decodePassing(_ records: [Transcript.Record]) -> ([ConversationEvent], UInt64) {
        var decoder = ConversationDecoder()
        var events: [ConversationEvent] = []
        var passed: UInt64 = 0
        for r in records {
            var b = r.bytes
            while b.readableBytes > 0 {
                let ahead = decoder.payloadAhead(r.direction)
                if ahead > 0 {
                    let n = Int(min(ahead, UInt64(b.readableBytes)))
                    let taken = decoder.passPayload(r.direction, UInt64(n), at: r.time, into: &events)
                    #expect(taken == UInt64(n))
                    passed += taken
                    b.moveReaderIndex(forwardBy: n)
                } else {
                    // One byte at a time while a header is framed: the payload that follows
                    // it is then seen as ahead as soon as the header is complete.
                    decoder.feed(r.direction, b.readSlice(length: 1)!, at: r.time, into: &events)
                }
            }
        }
        let end = records.last?.time ?? 0
        decoder.finish(.clientToServer, at: end, into: &events)
        decoder.finish(.serverToClient, at: end, into: &events)
        return (events, passed)
    }

    @Test func passingPayloadGivesTheEventsFeedingGives() throws {
        var transcripts = scenarios()
        for name in recordedSessions { transcripts.append(try loadTranscript(name)) }
        var totalPassed: UInt64 = 0
        for t in transcripts {
            let fed = decode(t.records, splitting: { _, n in Array(0..<n) })
            let (passedEvents, passed) = decodePassing(t.records)
            #expect(passedEvents == fed)
            totalPassed += passed
        }
        // The scenarios carry 600-, 300- and 40-byte payloads and the recordings real data.
        #expect(totalPassed > 2000)
    }

    @Test func nothingIsAheadInsideAHeaderAndExcessIsRefused() {
        var b = ConversationBuilder()
        b.negotiate()
        b.request(.write, cookie: 1, offset: 0, length: 100, payload: Array(repeating: 7, count: 100))
        var decoder = ConversationDecoder()
        var events: [ConversationEvent] = []
        let records = b.transcript.records
        for r in records.dropLast() { decoder.feed(r.direction, r.bytes, at: 0, into: &events) }
        var last = records.last!.bytes
        // 28-byte request header, then 100 bytes of payload.
        decoder.feed(.clientToServer, last.readSlice(length: 10)!, at: 0, into: &events)
        #expect(decoder.payloadAhead(.clientToServer) == 0)
        #expect(decoder.passPayload(.clientToServer, 5, at: 0, into: &events) == 0)
        decoder.feed(.clientToServer, last.readSlice(length: 18)!, at: 0, into: &events)
        #expect(decoder.payloadAhead(.clientToServer) == 100)
        #expect(decoder.passPayload(.clientToServer, 150, at: 0, into: &events) == 100)
        #expect(decoder.payloadAhead(.clientToServer) == 0)
        #expect(decoder.bytesSeen(.clientToServer) == decoder.decidedOffset(.clientToServer))
    }
}
