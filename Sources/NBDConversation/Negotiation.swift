import NBDProtocol
import NIOCore

/// The handshake: greeting, client flags, options and their replies.
extension ConversationDecoder {
    mutating func parseClient(_ buf: inout ByteBuffer, _ offset: UInt64, _ time: UInt64, _ events: inout [ConversationEvent]) throws(WireError) {
        let d = StreamDirection.clientToServer
        switch phase {
        case .clientFlags:
            let flags = ClientFlags(rawValue: buf.readInteger()!)
            clientFlags = flags
            emit(d, offset, time, .clientFlags(flags), &events)
            let unknown = flags.rawValue & ~ClientFlags.known.rawValue
            if unknown != 0 {
                emit(d, offset, time, .violation(ProtocolViolation(.unknownClientFlags,
                    "client flags 0x\(hex(flags.rawValue)) set unknown bits 0x\(hex(unknown)); the server must drop the connection")), &events)
            }
            if flags.contains(.noZeroes) && !serverHandshakeFlags.contains(.noZeroes) {
                emit(d, offset, time, .violation(ProtocolViolation(.flagNotAdvertised,
                    "client set C_NO_ZEROES though the server did not offer NO_ZEROES")), &events)
            }
            phase = .options
        case .options:
            let header = try framed(try OptionHeader.read(from: &buf), "option header", &buf)
            let data = try framed(buf.readSlice(length: Int(header.dataLength)), "option data", &buf)
            var parsed: OptionData
            do {
                parsed = try OptionData.parse(option: header.option, data: data)
            } catch {
                parsed = .opaque(length: header.dataLength)
                emit(d, offset, time, .option(header, parsed), &events)
                emit(d, offset, time, .violation(ProtocolViolation(.malformedPayload, "NBD_OPT_\(header.option.name) data: \(error.description)")), &events)
                phase = header.option == .exportName ? .exportNameReply : .optionReply(header.option)
                return
            }
            emit(d, offset, time, .option(header, parsed), &events)
            startOption(header, parsed, offset, time, &events)
        case .transmission:
            try parseRequest(&buf, offset, time, &events)
        case .closed:
            emit(d, offset, time, .violation(ProtocolViolation(.afterDisconnect, "client sent data after NBD_OPT_ABORT was acknowledged", fatal: true)), &events)
            withState(d) { $0.dead = true }
            buf.moveReaderIndex(forwardBy: buf.readableBytes)
        case .greeting, .optionReply, .exportNameReply, .tls:
            break  // `required` never asks to parse in these phases
        }
    }

    mutating func startOption(_ header: OptionHeader, _ data: OptionData, _ offset: UInt64, _ time: UInt64, _ events: inout [ConversationEvent]) {
        let d = StreamDirection.clientToServer
        if style == .newstyle && header.option != .exportName {
            emit(d, offset, time, .violation(ProtocolViolation(.optionNotAllowed,
                "NBD_OPT_\(header.option.name) sent to a server that is not fixed newstyle (only EXPORT_NAME is allowed)")), &events)
        }
        switch header.option {
        case .exportName:
            if extendedHeaders {
                emit(d, offset, time, .violation(ProtocolViolation(.optionNotAllowed,
                    "NBD_OPT_EXPORT_NAME sent after extended headers were negotiated (GO is required)")), &events)
            }
            if case .exportName(let name) = data { exportName = name }
            phase = .exportNameReply
        case .info, .go:
            if case .info(let req) = data { exportName = req.exportName }
            sawInfoExport = false
            blockSize = nil
            phase = .optionReply(header.option)
        case .setMetaContext:
            pendingMetaContexts = [:]
            phase = .optionReply(header.option)
        case .abort, .list, .peekExport, .startTLS, .structuredReply, .listMetaContext, .extendedHeaders, .unknown:
            phase = .optionReply(header.option)
        }
    }

    mutating func parseServer(_ buf: inout ByteBuffer, _ offset: UInt64, _ time: UInt64, _ events: inout [ConversationEvent]) throws(WireError) {
        let d = StreamDirection.serverToClient
        switch phase {
        case .greeting:
            let greeting = try framed(try ServerGreeting.read(from: &buf), "server greeting", &buf)
            emit(d, offset, time, .serverGreeting(greeting), &events)
            switch greeting {
            case .oldstyle(let g):
                style = .oldstyle
                exportSize = g.size
                transmissionFlags = g.transmissionFlags
                if g.reservedNonZero {
                    emit(d, offset, time, .violation(ProtocolViolation(.malformedPayload, "oldstyle greeting's 124 reserved bytes are not all zero")), &events)
                }
                startTransmission(d, offset, time, &events)
            case .newstyle(let flags):
                serverHandshakeFlags = flags
                style = flags.contains(.fixedNewstyle) ? .fixedNewstyle : .newstyle
                if flags.rawValue & ~HandshakeFlags.known.rawValue != 0 {
                    emit(d, offset, time, .violation(ProtocolViolation(.unknownClientFlags,
                        "server handshake flags 0x\(hex(flags.rawValue)) set bits the spec does not define")), &events)
                }
                phase = .clientFlags
            }
        case .optionReply(let option):
            let header = try framed(try OptionReplyHeader.read(from: &buf), "option reply header", &buf)
            let data = try framed(buf.readSlice(length: Int(header.dataLength)), "option data", &buf)
            var parsed: OptionReplyData
            var malformed: WireError?
            do {
                parsed = try OptionReplyData.parse(type: header.type, data: data)
            } catch {
                malformed = error
                parsed = header.type.isError ? .error(message: "") : .unknown(length: header.dataLength)
            }
            let final = header.type.isError || header.type == .ack
            emit(d, offset, time, .optionReply(header, parsed, final: final), &events)
            if let malformed {
                emit(d, offset, time, .violation(ProtocolViolation(.malformedPayload, "NBD_REP_\(header.type.name) data: \(malformed.description)")), &events)
            }
            if header.option != option {
                emit(d, offset, time, .violation(ProtocolViolation(.replyForOtherOption,
                    "reply names NBD_OPT_\(header.option.name) but the client sent NBD_OPT_\(option.name)")), &events)
            }
            checkReplyType(option, header.type, offset, time, &events)
            applyReply(option, header.type, parsed, offset, time, &events)
        case .exportNameReply:
            let reply = try framed(ExportNameReply.read(from: &buf, zeroesOmitted: zeroesOmitted), "export name reply", &buf)
            emit(d, offset, time, .exportNameReply(reply), &events)
            exportSize = reply.size
            transmissionFlags = reply.flags
            startTransmission(d, offset, time, &events)
        case .transmission:
            try parseReply(&buf, offset, time, &events)
        case .closed:
            emit(d, offset, time, .violation(ProtocolViolation(.afterDisconnect, "server sent data after acknowledging NBD_OPT_ABORT", fatal: true)), &events)
            withState(d) { $0.dead = true }
            buf.moveReaderIndex(forwardBy: buf.readableBytes)
        case .clientFlags, .options, .tls:
            break
        }
    }

    func checkReplyType(_ option: NBDOption, _ type: OptionReplyType, _ offset: UInt64, _ time: UInt64, _ events: inout [ConversationEvent]) {
        let allowed: Bool
        switch type {
        case .ack, .errUnsup, .errPolicy, .errInvalid, .errPlatform, .errTLSReqd, .errUnknown,
             .errShutdown, .errBlockSizeReqd, .errTooBig, .errExtHeaderReqd:
            allowed = true
        case .server: allowed = option == .list
        case .info: allowed = option == .info || option == .go
        case .metaContext: allowed = option == .listMetaContext || option == .setMetaContext
        case .unknown: allowed = type.isError
        }
        if !allowed {
            emit(.serverToClient, offset, time, .violation(ProtocolViolation(.unexpectedReplyType,
                "NBD_REP_\(type.name) is not a valid reply to NBD_OPT_\(option.name)")), &events)
        }
    }

    mutating func applyReply(_ option: NBDOption, _ type: OptionReplyType, _ data: OptionReplyData, _ offset: UInt64, _ time: UInt64, _ events: inout [ConversationEvent]) {
        let d = StreamDirection.serverToClient
        switch data {
        case .info(let info):
            switch info {
            case .export(let size, let flags):
                exportSize = size
                transmissionFlags = flags
                sawInfoExport = true
            case .blockSize(let a, let b, let c):
                blockSize = (a, b, c)
            case .name, .description, .unknown:
                break
            }
        case .metaContext(let id, let name):
            if option == .setMetaContext { pendingMetaContexts[id] = name }
        case .ack, .server, .error, .unknown:
            break
        }
        guard type.isError || type == .ack else { return }
        // The option's exchange is over: the client has the turn again.
        let clientSentEarly = c2s.pending.readableBytes > 0
        phase = .options
        if type == .ack {
            switch option {
            case .structuredReply:
                structuredReplies = true
            case .extendedHeaders:
                extendedHeaders = true
                structuredReplies = true
            case .setMetaContext:
                metaContexts = pendingMetaContexts
            case .go:
                if !sawInfoExport {
                    emit(d, offset, time, .violation(ProtocolViolation(.malformedPayload, "NBD_OPT_GO acknowledged without an NBD_INFO_EXPORT reply")), &events)
                }
                startTransmission(d, offset, time, &events, viaGo: true)
            case .startTLS:
                phase = .tls
                tlsJudged = false
                structuredReplies = false
                extendedHeaders = false
                metaContexts = [:]
                emit(d, offset, time, .tlsStarted, &events)
            case .abort:
                phase = .closed
            case .exportName, .list, .peekExport, .info, .listMetaContext, .unknown:
                break
            }
        } else if option == .setMetaContext {
            metaContexts = [:]
        }
        if clientSentEarly && phase != .tls {
            emit(.clientToServer, c2s.offset, time, .violation(ProtocolViolation(.optionBeforeReply,
                "client sent more data before the final reply to NBD_OPT_\(option.name)")), &events)
        }
    }

    mutating func startTransmission(_ d: StreamDirection, _ offset: UInt64, _ time: UInt64, _ events: inout [ConversationEvent], viaGo: Bool = false) {
        phase = .transmission
        var info = currentInfo
        info.viaGo = viaGo
        emit(d, offset, time, .transmissionStarted(info), &events)
    }
}

@inline(__always)
func hex<T: BinaryInteger>(_ v: T) -> String { String(v, radix: 16) }
