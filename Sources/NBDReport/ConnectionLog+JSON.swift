import NBDConversation
import NBDProtocol

extension ConnectionLog {
    mutating func appendJSON(_ event: ConversationEvent, to out: inout [UInt8]) {
        let t = event.time
        var o: JSONObject
        switch event.kind {
        case .request(let r):
            o = header(t, "request")
            o.number("id", r.id)
            o.string("command", r.header.command.name)
            o.string("cookie", "0x" + String(r.header.cookie, radix: 16))
            o.number("offset", r.header.offset)
            o.number("length", r.effectLength)
            if let ids = r.contextFilter { o.string("contexts", ids.map(String.init).joined(separator: ",")) }
            o.strings("flags", r.header.flags.names)
        case .completed(let c):
            guard c.outcome != .noReply else { return }
            o = header(t, "reply")
            o.number("id", c.id)
            o.string("command", c.request.command.name)
            o.string("cookie", "0x" + String(c.request.cookie, radix: 16))
            switch c.outcome {
            case .replied: o.optionalString("error", c.error == .ok ? nil : c.error.name)
            case .abandoned, .noReply: o.string("error", "ENOTCONN")
            }
            if c.outcome == .abandoned { o.bool("abandoned", true) }
            if let m = c.errorMessage { o.string("message", m) }
            o.double("latency_us", Double(c.latencyNanoseconds) / 1000)
            o.number("chunks", c.chunks)
            if c.dataBytes > 0 { o.number("data_bytes", c.dataBytes) }
            if c.holeBytes > 0 { o.number("hole_bytes", c.holeBytes) }
            if case .blockStatus = c.request.command { o.raw("extents", extentsJSON(c)) }
        case .serverGreeting(let g):
            o = header(t, "greeting")
            switch g {
            case .oldstyle(let os):
                o.string("style", "oldstyle")
                o.number("size", os.size)
                o.strings("eflags", os.transmissionFlags.names)
            case .newstyle(let f):
                o.string("style", f.contains(.fixedNewstyle) ? "fixed_newstyle" : "newstyle")
                o.strings("flags", f.names)
            }
        case .clientFlags(let f):
            o = header(t, "client_flags")
            o.strings("flags", f.names)
        case .option(let h, let data):
            o = header(t, "option")
            o.string("option", h.option.name)
            switch data {
            case .exportName(let n): o.string("export", n)
            case .info(let r):
                o.string("export", r.exportName)
                o.strings("info", r.requests.map { $0.name })
            case .metaContext(let r):
                o.string("export", r.exportName)
                o.strings("queries", r.queries)
            case .opaque(let n): o.number("length", n)
            }
        case .optionReply(let h, let data, let final):
            o = header(t, "option_reply")
            o.string("option", h.option.name)
            o.string("reply", h.type.name)
            o.bool("final", final)
            switch data {
            case .ack: break
            case .server(let n, let d):
                o.string("export", n)
                o.string("description", d)
            case .info(let i):
                o.string("info", i.type.name)
                switch i {
                case .export(let size, let flags):
                    o.number("size", size)
                    o.strings("eflags", flags.names)
                case .name(let n): o.string("name", n)
                case .description(let d): o.string("description", d)
                case .blockSize(let a, let b, let c):
                    o.number("minimum", a)
                    o.number("preferred", b)
                    o.number("maximum", c)
                case .unknown(_, let length): o.number("length", length)
                }
            case .metaContext(let id, let name):
                o.number("context_id", id)
                o.string("context", name)
            case .error(let m): o.string("message", m)
            case .unknown(let n): o.number("length", n)
            }
        case .exportNameReply(let r):
            o = header(t, "option_reply")
            o.string("option", "EXPORT_NAME")
            o.number("size", r.size)
            o.strings("eflags", r.flags.names)
        case .transmissionStarted(let i):
            o = header(t, "connect")
            o.string("export", i.exportName)
            o.number("size", i.size)
            o.strings("eflags", i.flags.names)
            o.string("style", i.style.rawValue)
            o.bool("structured_replies", i.structuredReplies)
            o.bool("extended_headers", i.extendedHeaders)
            o.bool("tls", i.tls)
            var ctx = JSONObject()
            for (id, name) in i.metaContexts.sorted(by: { $0.key < $1.key }) { ctx.string(String(id), name) }
            o.object("meta_contexts", ctx)
        case .tlsStarted:
            o = header(t, "tls")
        case .violation(let v):
            o = header(t, "violation")
            o.string("from", event.direction == .clientToServer ? "client" : "server")
            o.string("code", v.code.rawValue)
            o.bool("fatal", v.fatal)
            o.string("reason", v.reason)
            o.number("stream_offset", event.streamOffset)
        case .compliance(let c):
            guard c.occurrence == 1 else { return }
            o = header(t, "compliance")
            o.string("from", event.direction == .clientToServer ? "client" : "server")
            o.string("code", c.code.rawValue)
            o.string("seen_in", c.seenIn)
            o.string("reason", c.reason)
            o.number("stream_offset", event.streamOffset)
        case .gap(let n):
            appendGap(PendingGap(time: t, direction: event.direction, bytes: n, holes: 1), to: &out)
            return
        case .skipped(let n):
            o = header(t, "resync")
            o.string("from", event.direction == .clientToServer ? "client" : "server")
            o.number("skipped_bytes", n)
        case .simpleReply, .replyChunk, .payload, .opaque, .closed:
            return
        }
        out += o.finished
        out += "\n"
    }

    func extentsJSON(_ c: CompletedRequest) -> String {
        var parts: [String] = []
        for ctx in c.extents {
            var o = JSONObject()
            o.number("context_id", ctx.contextID)
            o.optionalString("context", ctx.contextName)
            var offset = c.request.offset
            var items: [String] = []
            for d in ctx.descriptors {
                items.append("[\(offset),\(d.length),\(d.status)]")
                offset &+= d.length
            }
            o.raw("extents", "[" + items.joined(separator: ",") + "]")
            parts.append(o.finished)
        }
        return "[" + parts.joined(separator: ",") + "]"
    }
}
