import NBDConversation
import NBDProtocol

extension ConnectionLog {
    func flagsHex<T: BinaryInteger>(_ v: T) -> String { "0x" + String(v, radix: 16) }

    mutating func appendText(_ event: ConversationEvent, to out: inout [UInt8]) {
        let t = event.time
        switch event.kind {
        case .request(let r):
            if case .disc = r.header.command { return }  // nbdkit logs DISC only as Disconnect
            appendRequestLine(r, time: t, to: &out)
        case .completed(let c):
            guard c.outcome != .noReply else { return }
            appendReplyLine(c, time: t, to: &out)
        case .serverGreeting(let g):
            switch g {
            case .oldstyle(let o):
                line(t, "Greeting style=oldstyle size=\(flagsHex(o.size)) eflags=\(flagsHex(o.transmissionFlags.rawValue))", &out)
            case .newstyle(let f):
                line(t, "Greeting style=\(f.contains(.fixedNewstyle) ? "fixed_newstyle" : "newstyle") flags=\(flagsHex(f.rawValue))", &out)
            }
        case .clientFlags(let f):
            line(t, "ClientFlags flags=\(flagsHex(f.rawValue))", &out)
        case .option(let h, let data):
            line(t, "Option opt=\(h.option.name)\(optionText(data)) ...", &out)
        case .optionReply(let h, let data, _):
            line(t, "...Option opt=\(h.option.name) reply=\(h.type.name)\(replyText(data))", &out)
        case .exportNameReply(let r):
            line(t, "...Option opt=EXPORT_NAME size=\(flagsHex(r.size)) eflags=\(flagsHex(r.flags.rawValue))", &out)
        case .transmissionStarted(let info):
            line(t, connectText(info), &out)
        case .tlsStarted:
            line(t, "TLS starttls=1", &out)
        case .violation(let v):
            line(t, "Violation from=\(event.direction == .clientToServer ? "client" : "server") code=\(v.code.rawValue) fatal=\(v.fatal ? 1 : 0) reason=\(ShellQuote.quote(v.reason))", &out)
        case .compliance(let c):
            guard c.occurrence == 1 else { return }
            line(t, "Compliance from=\(event.direction == .clientToServer ? "client" : "server") code=\(c.code.rawValue) seen_in=\(ShellQuote.quote(c.seenIn)) reason=\(ShellQuote.quote(c.reason))", &out)
        case .gap(let n):
            appendGap(PendingGap(time: t, direction: event.direction, bytes: n, holes: 1), to: &out)
        case .skipped(let n):
            line(t, "Resync from=\(event.direction == .clientToServer ? "client" : "server") skipped=\(n)", &out)
        case .simpleReply, .replyChunk, .payload, .opaque, .closed:
            break
        }
    }

    func extentsText(_ c: CompletedRequest) -> String {
        var body = ""
        for ctx in c.extents {
            let isBase = ctx.contextName == "base:allocation" || (ctx.contextName == nil && c.extents.count == 1)
            var offset = c.request.offset
            var items: [String] = []
            for d in ctx.descriptors {
                let kind = isBase ? "\"\(extentType(d.status))\"" : flagsHex(d.status)
                items.append("\(flagsHex(offset)) \(flagsHex(d.length)) \(kind)")
                offset &+= d.length
            }
            let key = isBase ? "extents" : "extents[\(ctx.contextName ?? "id\(ctx.contextID)")]"
            body += " \(key)=(\(items.joined(separator: " ")))"
        }
        return body
    }

    func optionText(_ data: OptionData) -> String {
        switch data {
        case .exportName(let n): return " export=\(ShellQuote.quote(n))"
        case .info(let r): return " export=\(ShellQuote.quote(r.exportName)) info=(\(r.requests.map { $0.name }.joined(separator: " ")))"
        case .metaContext(let r): return " export=\(ShellQuote.quote(r.exportName)) queries=(\(r.queries.map(ShellQuote.quote).joined(separator: " ")))"
        case .opaque(let n): return n > 0 ? " length=\(n)" : ""
        }
    }

    func replyText(_ data: OptionReplyData) -> String {
        switch data {
        case .ack: return ""
        case .server(let n, let d): return " export=\(ShellQuote.quote(n))\(d.isEmpty ? "" : " description=\(ShellQuote.quote(d))")"
        case .info(let i):
            switch i {
            case .export(let size, let flags): return " info=EXPORT size=\(flagsHex(size)) eflags=\(flagsHex(flags.rawValue))"
            case .name(let n): return " info=NAME name=\(ShellQuote.quote(n))"
            case .description(let d): return " info=DESCRIPTION description=\(ShellQuote.quote(d))"
            case .blockSize(let a, let b, let c): return " info=BLOCK_SIZE minsize=\(flagsHex(a)) prefsize=\(flagsHex(b)) maxsize=\(flagsHex(c))"
            case .unknown(let type, let length): return " info=\(type) length=\(length)"
            }
        case .metaContext(let id, let name): return " context_id=\(id) context=\(ShellQuote.quote(name))"
        case .error(let m): return m.isEmpty ? "" : " message=\(ShellQuote.quote(m))"
        case .unknown(let n): return " length=\(n)"
        }
    }

    /// nbdkit's Connect line, derived from the negotiated flags (zero/fua/cache: 2 when
    /// the export offers them, as nbdkit prints native support), plus nbdtap's additions.
    func connectText(_ i: TransmissionInfo) -> String {
        let f = i.flags
        func b(_ x: Bool) -> Int { x ? 1 : 0 }
        let bs = i.blockSize
        let extents = i.metaContexts.values.contains("base:allocation")
        return "Connect export=\(ShellQuote.quote(i.exportName)) tls=\(i.tls ? 1 : 0) size=\(flagsHex(i.size))"
            + " minsize=\(flagsHex(bs?.minimum ?? 0)) prefsize=\(flagsHex(bs?.preferred ?? 0)) maxsize=\(flagsHex(bs?.maximum ?? 0))"
            + " write=\(b(!f.contains(.readOnly))) flush=\(b(f.contains(.sendFlush))) rotational=\(b(f.contains(.rotational)))"
            + " trim=\(b(f.contains(.sendTrim))) zero=\(f.contains(.sendWriteZeroes) ? 2 : 0) fua=\(f.contains(.sendFUA) ? 2 : 0)"
            + " extents=\(b(extents)) cache=\(f.contains(.sendCache) ? 2 : 0) fast_zero=\(b(f.contains(.sendFastZero)))"
            + " eflags=\(flagsHex(f.rawValue)) style=\(i.style.rawValue) structured=\(b(i.structuredReplies)) extended=\(b(i.extendedHeaders))"
    }
}
