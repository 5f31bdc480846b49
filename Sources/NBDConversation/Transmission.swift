import NBDProtocol
import NIOCore

/// The transmission phase: requests, their payloads, replies and the cookie table.
extension ConversationDecoder {
    /// A message `required` said was complete but the reader found short: a decoder bug,
    /// never a trap on network input; the stream is closed as unframeable.
    func framed<T>(_ value: T?, _ what: String, _ buf: inout ByteBuffer) throws(WireError) -> T {
        guard let value else { throw .truncated(context: what, needed: 0, available: buf.readableBytes) }
        return value
    }

    mutating func parseRequest(_ buf: inout ByteBuffer, _ offset: UInt64, _ time: UInt64, _ events: inout [ConversationEvent]) throws(WireError) {
        let d = StreamDirection.clientToServer
        let header = try framed(try RequestHeader.read(from: &buf, extended: extendedHeaders), "request header", &buf)
        if c2s.disconnected {
            emit(d, offset, time, .violation(ProtocolViolation(.afterDisconnect, "request sent after NBD_CMD_DISC")), &events)
        }
        let payload = header.payloadLength
        var filter: (effectLength: UInt64, ids: [UInt32])?
        var filterProblem: String?
        let blockStatusPayload = header.extended && header.command == .blockStatus && payload > 0
        let parsesPayload = blockStatusPayload && UInt64(buf.readableBytes) >= payload
        if parsesPayload {
            // NBD_FLAG_BLOCK_STATUS_PAYLOAD: u64 effect length, then u32 context ids.
            var body = try framed(buf.getSlice(at: buf.readerIndex, length: Int(payload)), "block status payload", &buf)
            if payload >= 8 && (payload - 8) % 4 == 0, let effect = body.readInteger(as: UInt64.self) {
                var ids: [UInt32] = []
                ids.reserveCapacity(Int(payload - 8) / 4)
                while let id = body.readInteger(as: UInt32.self) { ids.append(id) }
                filter = (effect, ids)
            } else {
                filterProblem = "NBD_CMD_BLOCK_STATUS payload of \(payload) bytes is not a u64 effect length and u32 context ids"
            }
        } else if blockStatusPayload {
            filterProblem = "NBD_CMD_BLOCK_STATUS payload of \(payload) bytes exceeds the \(limits.maxOptionData)-byte limit; passed over"
        }
        let event = RequestEvent(id: nextID, header: header, time: time, effectLength: filter?.effectLength, contextFilter: filter?.ids)
        nextID += 1
        emit(d, offset, time, .request(event), &events)
        if payload > 0 {
            let start = offset + UInt64(header.wireLength)
            emit(d, start, time, .payload(cookie: header.cookie, span: StreamSpan(direction: d, offset: start, length: payload)), &events)
            if parsesPayload { buf.moveReaderIndex(forwardBy: Int(payload)) } else { c2s.skip = payload }
        }
        if let filterProblem { emit(d, offset, time, .violation(ProtocolViolation(.malformedPayload, filterProblem)), &events) }
        if negotiationKnown { validate(header, effectLength: event.effectLength, offset, time, &events) }
        if case .disc = header.command {
            c2s.disconnected = true
            return
        }
        let entry = InFlight(event: event)
        if inFlightCount >= limits.maxInFlight {
            kill(d, ProtocolViolation(.tooLarge, "more than \(limits.maxInFlight) requests in flight"), time, &events)
            return
        }
        inFlightCount += 1
        if inFlight[header.cookie] != nil {
            emit(d, offset, time, .violation(ProtocolViolation(.duplicateCookie,
                "request \(event.id) reuses cookie 0x\(hex(header.cookie)), still in flight")), &events)
            duplicates[header.cookie, default: []].append(entry)
        } else {
            inFlight[header.cookie] = entry
        }
    }

    /// Checks a request against what the export advertised. None of these stop decoding:
    /// the header alone frames the stream.
    mutating func validate(_ h: RequestHeader, effectLength: UInt64, _ offset: UInt64, _ time: UInt64, _ events: inout [ConversationEvent]) {
        let d = StreamDirection.clientToServer
        let name = "NBD_CMD_\(h.command.name)"
        func report(_ code: ProtocolViolation.Code, _ reason: String) {
            emit(d, offset, time, .violation(ProtocolViolation(code, reason)), &events)
        }
        if let needed = h.command.requiredTransmissionFlag, !transmissionFlags.contains(needed) {
            report(.commandNotAdvertised, "\(name) sent though the export did not advertise \(needed.names.joined(separator: "|"))")
        }
        switch h.command {
        case .blockStatus:
            if !structuredReplies {
                report(.commandNotAdvertised, "\(name) sent without structured replies negotiated")
            } else if metaContexts.isEmpty {
                report(.commandNotAdvertised, "\(name) sent with no meta context selected")
            }
        case .unknown:
            report(.commandNotAdvertised, "unknown command \(h.command.rawValue)")
        case .read, .write, .disc, .flush, .trim, .cache, .writeZeroes, .resize:
            break
        }
        if h.command.isWrite && transmissionFlags.contains(.readOnly) {
            report(.writeOnReadOnly, "\(name) sent to a read-only export")
        }
        let flags = h.flags
        if flags.contains(.fua) && !transmissionFlags.contains(.sendFUA) {
            report(.flagNotAdvertised, "FUA sent though the export did not advertise SEND_FUA")
        }
        if flags.contains(.noHole) && h.command != .writeZeroes {
            report(.flagNotValid, "NO_HOLE is only valid on NBD_CMD_WRITE_ZEROES, not \(name)")
        }
        if flags.contains(.df) {
            if h.command != .read {
                report(.flagNotValid, "DF is only valid on NBD_CMD_READ, not \(name)")
            } else if !transmissionFlags.contains(.sendDF) {
                report(.flagNotAdvertised, "DF sent though the export did not advertise SEND_DF")
            }
        }
        if flags.contains(.reqOne) && h.command != .blockStatus {
            report(.flagNotValid, "REQ_ONE is only valid on NBD_CMD_BLOCK_STATUS, not \(name)")
        }
        if flags.contains(.fastZero) {
            if h.command != .writeZeroes {
                report(.flagNotValid, "FAST_ZERO is only valid on NBD_CMD_WRITE_ZEROES, not \(name)")
            } else if !transmissionFlags.contains(.sendFastZero) {
                report(.flagNotAdvertised, "FAST_ZERO sent though the export did not advertise SEND_FAST_ZERO")
            }
        }
        if flags.contains(.payloadLen) {
            if !extendedHeaders {
                report(.flagNotValid, "PAYLOAD_LEN sent without extended headers")
            } else if h.command == .blockStatus && !transmissionFlags.contains(.blockStatusPayload) {
                report(.flagNotAdvertised, "PAYLOAD_LEN on BLOCK_STATUS though the export did not advertise BLOCK_STATUS_PAYLOAD")
            } else if h.command != .write && h.command != .blockStatus {
                report(.flagNotValid, "PAYLOAD_LEN is not valid on \(name)")
            }
        } else if extendedHeaders && h.command == .write {
            noteCompliance(.writeWithoutPayloadLen, d, offset, time, &events,
                           "NBD_CMD_WRITE without PAYLOAD_LEN under extended headers; its length 0x\(hex(h.length)) is taken as the payload length",
                           seenIn: "qemu 10 clients; qemu-nbd 10 accepts it")
        }
        let unknownFlags = flags.rawValue & ~CommandFlags.known.rawValue
        if unknownFlags != 0 {
            report(.flagNotValid, "unknown command flags 0x\(hex(unknownFlags)) on \(name)")
        }
        switch h.command {
        case .read, .write, .trim, .cache, .writeZeroes, .blockStatus:
            let (end, overflow) = h.offset.addingReportingOverflow(effectLength)
            if overflow || end > exportSize {
                report(.beyondExportSize, "\(name) offset 0x\(hex(h.offset)) length 0x\(hex(effectLength)) goes past the export size 0x\(hex(exportSize))")
            }
        case .disc, .flush:
            if h.offset != 0 || h.length != 0 {
                report(.malformedPayload, "\(name) with offset 0x\(hex(h.offset)) length 0x\(hex(h.length)); both must be 0")
            }
        case .resize, .unknown:
            break
        }
    }

    /// Reports a compliance note, numbered per code on the connection; the reason is only
    /// built for the first, which is the one logs print.
    mutating func noteCompliance(_ code: ComplianceNote.Code, _ d: StreamDirection, _ offset: UInt64, _ time: UInt64,
                                 _ events: inout [ConversationEvent], _ reason: @autoclosure () -> String, seenIn: String) {
        let n = (complianceCounts[code] ?? 0) + 1
        complianceCounts[code] = n
        emit(d, offset, time, .compliance(ComplianceNote(code, n == 1 ? reason() : "", seenIn: seenIn, occurrence: n)), &events)
    }

    mutating func parseReply(_ buf: inout ByteBuffer, _ offset: UInt64, _ time: UInt64, _ events: inout [ConversationEvent]) throws(WireError) {
        let d = StreamDirection.serverToClient
        let header = try framed(try ReplyHeader.read(from: &buf, allowSimple: true, allowStructured: true, allowExtended: true), "reply header", &buf)
        switch header {
        case .simple(let reply):
            emit(d, offset, time, .simpleReply(reply), &events)
            if extendedHeaders && negotiationKnown {
                emit(d, offset, time, .violation(ProtocolViolation(.replyFormatNotNegotiated, "simple reply though extended headers were negotiated")), &events)
            }
            guard var entry = takeInFlight(reply.cookie) else {
                if lossy {
                    // A reply to a request from before the capture: whether data follows is
                    // unknown, so look for the next recognisable reply instead of guessing.
                    s2c.hunting = true
                    return
                }
                emit(d, offset, time, .violation(ProtocolViolation(.unknownCookie,
                    "simple reply for cookie 0x\(hex(reply.cookie)) with no request in flight")), &events)
                return
            }
            entry.chunks = 1
            entry.error = reply.error
            if case .read = entry.event.header.command {
                if structuredReplies && negotiationKnown {
                    emit(d, offset, time, .violation(ProtocolViolation(.replyFormatNotNegotiated,
                        "simple reply to NBD_CMD_READ though structured replies were negotiated")), &events)
                }
                if reply.error == .ok && entry.event.header.length > 0 {
                    let start = offset + UInt64(SimpleReplyHeader.length)
                    let length = entry.event.header.length
                    emit(d, start, time, .payload(cookie: reply.cookie, span: StreamSpan(direction: d, offset: start, length: length)), &events)
                    s2c.skip = length
                    entry.dataBytes = length
                }
            }
            complete(entry, offset, time, &events)
        case .chunk(let chunk):
            try parseChunk(chunk, &buf, offset, time, &events)
        }
    }

    /// Reports a request answered, or holds the report until the reply's data has passed.
    mutating func complete(_ entry: InFlight, _ offset: UInt64, _ time: UInt64, _ events: inout [ConversationEvent]) {
        let done = ConversationEvent(direction: .serverToClient, streamOffset: offset, time: time,
                                     kind: .completed(entry.completed(at: time, outcome: .replied)))
        if s2c.skip > 0 { completionAfterPayload = done } else { events.append(done) }
    }

    /// Removes and returns the request a final reply answers, promoting a duplicate.
    mutating func takeInFlight(_ cookie: UInt64) -> InFlight? {
        guard let entry = inFlight.removeValue(forKey: cookie) else { return nil }
        inFlightCount -= 1
        if var queue = duplicates[cookie], !queue.isEmpty {
            inFlight[cookie] = queue.removeFirst()
            duplicates[cookie] = queue.isEmpty ? nil : queue
        }
        return entry
    }

    mutating func parseChunk(_ chunk: ReplyChunkHeader, _ buf: inout ByteBuffer, _ offset: UInt64, _ time: UInt64, _ events: inout [ConversationEvent]) throws(WireError) {
        let d = StreamDirection.serverToClient
        func report(_ code: ProtocolViolation.Code, _ reason: String) {
            emit(d, offset, time, .violation(ProtocolViolation(code, reason)), &events)
        }
        let parseLength = chunkParseLength(type: chunk.type.rawValue, length: chunk.length)
        let parsedBytes = try framed(buf.readSlice(length: parseLength), "reply chunk payload", &buf)
        var payload: ChunkPayload
        var problem: WireError?
        if parseLength < Int(clamping: chunk.length), chunk.type != .offsetData {
            payload = .unknown(length: chunk.length)
            problem = .badLength(context: "NBD_REPLY_TYPE_\(chunk.type.name)", length: chunk.length, expected: "at most \(limits.maxParsedChunk) to be decoded")
        } else {
            do {
                payload = try ChunkPayload.parse(type: chunk.type, payload: parsedBytes, totalLength: chunk.length)
            } catch {
                payload = .unknown(length: chunk.length)
                problem = error
            }
        }
        emit(d, offset, time, .replyChunk(chunk, payload), &events)
        // Bytes of the chunk not parsed: OFFSET_DATA's data, or an oversized payload.
        let rest = chunk.length - UInt64(parseLength)
        if rest > 0 {
            let start = offset + UInt64(chunk.wireLength + parseLength)
            emit(d, start, time, .payload(cookie: chunk.cookie, span: StreamSpan(direction: d, offset: start, length: rest)), &events)
            s2c.skip = rest
        }
        if let problem { report(problem.code, problem.description) }
        if negotiationKnown && (chunk.extended != extendedHeaders || !structuredReplies) {
            report(.replyFormatNotNegotiated, chunk.extended ? "extended reply chunk without extended headers negotiated"
                : (extendedHeaders ? "structured reply chunk though extended headers were negotiated" : "structured reply chunk without structured replies negotiated"))
        }
        if case .unknown = chunk.type, !chunk.type.isError {
            report(.unknownChunkType, "unknown reply chunk type \(chunk.type.rawValue); the client must disconnect")
        }
        if case .none = chunk.type, !chunk.isDone {
            report(.malformedPayload, "NBD_REPLY_TYPE_NONE without NBD_REPLY_FLAG_DONE")
        }
        guard var entry = inFlight[chunk.cookie] else {
            if lossy { return }  // answers a request lost from the capture
            report(.unknownCookie, "reply chunk for cookie 0x\(hex(chunk.cookie)) with no request in flight")
            return
        }
        entry.chunks += 1
        let command = entry.event.header.command
        switch payload {
        case .offsetData(let dataOffset, let length):
            if command != .read { report(.chunkNotValidForCommand, "OFFSET_DATA in reply to NBD_CMD_\(command.name)") }
            checkRange(entry.event.header, dataOffset, length, "OFFSET_DATA", report)
            entry.dataBytes += length
        case .offsetHole(let holeOffset, let length):
            if command != .read { report(.chunkNotValidForCommand, "OFFSET_HOLE in reply to NBD_CMD_\(command.name)") }
            checkRange(entry.event.header, holeOffset, UInt64(length), "OFFSET_HOLE", report)
            entry.holeBytes += UInt64(length)
        case .blockStatus(let id, let descriptors), .blockStatusExt(let id, let descriptors):
            if command != .blockStatus { report(.chunkNotValidForCommand, "block status chunk in reply to NBD_CMD_\(command.name)") }
            if metaContexts[id] == nil && negotiationKnown { report(.malformedPayload, "block status for meta context id \(id), which was not negotiated") }
            if entry.extentCount + descriptors.count > limits.maxExtentsPerRequest {
                report(.tooLarge, "more than \(limits.maxExtentsPerRequest) block status descriptors for one request; the rest are dropped")
            } else {
                entry.extents.append(ContextExtents(contextID: id, contextName: metaContexts[id], descriptors: descriptors))
                entry.extentCount += descriptors.count
            }
        case .error(let error, let message), .errorOffset(let error, let message, _):
            if entry.error == .ok {
                entry.error = error
                entry.errorMessage = message.isEmpty ? nil : message
            }
            if error == .ok { report(.malformedPayload, "error chunk with error value 0") }
        case .none, .unknown:
            if chunk.type.isError && entry.error == .ok { entry.error = .einval }
        }
        if chunk.isDone {
            _ = takeInFlight(chunk.cookie)
            complete(entry, offset, time, &events)
        } else {
            inFlight[chunk.cookie] = entry
        }
    }

    func checkRange(_ request: RequestHeader, _ offset: UInt64, _ length: UInt64, _ what: String, _ report: (ProtocolViolation.Code, String) -> Void) {
        let (end, overflow) = offset.addingReportingOverflow(length)
        if offset < request.offset || overflow || end > request.offset &+ request.length {
            report(.malformedPayload, "\(what) at 0x\(hex(offset)) length 0x\(hex(length)) lies outside the request (0x\(hex(request.offset)) length 0x\(hex(request.length)))")
        }
    }
}
