import NBDConversation
import NBDProtocol
import NBDProxy
import NBDReport
import NIOCore

/// One recorded connection being replayed: its queue of recorded items, the fresh
/// negotiation, the requests in flight and the matching of each replayed reply with its
/// recording. Confined to the replay's one event loop (hence @unchecked Sendable), as is
/// its driver.
final class ReplayConnection: @unchecked Sendable {
    /// What is kept of a request once sent, to report it and compare its reply.
    struct Sent {
        var entry: ReplayReport.Entry
        var effectLength: UInt64
    }

    enum Phase {
        /// Waiting for the recorded negotiation, its turn to start, or the connect.
        case waiting
        case negotiating
        case transmitting
        /// Everything sent and answered; the connection is being closed.
        case closing
        case done
    }

    let number: Int
    let recordedStart: UInt64
    unowned let driver: ReplayDriver
    var phase = Phase.waiting
    var channel: Channel?
    var queue = CircularBuffer<WorkloadItem>()
    var queuedBytes = 0
    var recordedNegotiation: RecordedNegotiation?
    var negotiator: ReplayNegotiator?
    var info: TransmissionInfo?
    var tap: ConversationTap
    var tracker = ReplyTracker()
    var serverOffset: UInt64 = 0
    var report: ReplayReport.Connection
    /// Connections whose recording ended before this one's began, not yet replayed to
    /// their end: this one starts after them, as it did in the recording.
    var after: Set<Int>
    /// Replayed requests in flight, by the replay's own cookie, with their recorded id.
    var inFlight: [UInt64: UInt64] = [:]
    var sent: [UInt64: Sent] = [:]
    var nextCookie: UInt64 = 1
    /// Each half of a comparison that came before the other, by recorded id.
    var recordedOutcomes: [UInt64: ReplyOutcome] = [:]
    var replayedOutcomes: [UInt64: ReplyOutcome] = [:]
    var notSent: Set<UInt64> = []
    var recordedEnded = false
    /// Pace of `--timing original|scale=`: the recorded time of the last request sent and
    /// the uptime it was sent at.
    var lastRecordedTime: UInt64
    var lastSendUptime: UInt64 = 0
    var timerPending = false
    /// Uptime of the last byte from the upstream (or of the connect), for `replyTimeout`.
    var lastHeard: UInt64 = 0
    var watchdog: RepeatedTask?
    var logText: [UInt8] = []
    let allocator = ByteBufferAllocator()

    init(number: Int, recordedStart: UInt64, midSession: Bool, after: Set<Int>, driver: ReplayDriver) {
        self.number = number
        self.recordedStart = recordedStart
        self.after = after
        self.driver = driver
        lastRecordedTime = recordedStart
        tap = ConversationTap(connection: number, logFormat: driver.configuration.logFormat)
        report = ReplayReport.Connection(number: number)
    }

    // MARK: Recorded items

    func enqueue(_ items: [WorkloadItem]) {
        for item in items {
            switch item {
            case .negotiation(let n):
                recordedNegotiation = n
                if n.tls {
                    fail("the recording switched to TLS (NBD_OPT_STARTTLS): its requests are encrypted and cannot be replayed")
                }
            case .outcome(let id, let o):
                recordedOutcome(id, o)
            case .request(let r):
                if phase == .done || report.problem != nil {
                    notSendable(r, "not sent: \(report.problem ?? "the connection ended")")
                    continue
                }
                queuedBytes += Self.cost(r)
                driver.queuedBytes += Self.cost(r)
                queue.append(item)
            case .skipped(let n, _):
                report.skippedBytes += n
            case .end:
                recordedEnded = true
                if phase != .done { queue.append(item) }
            }
        }
        pump()
    }

    static func cost(_ r: RecordedRequest) -> Int { 128 + (r.payload?.readableBytes ?? 0) }

    func recordedOutcome(_ id: UInt64, _ o: ReplyOutcome) {
        if notSent.remove(id) != nil { return }
        if let replayed = replayedOutcomes.removeValue(forKey: id) {
            judge(id, recorded: o, replayed: replayed)
        } else {
            recordedOutcomes[id] = o
        }
    }

    func replayedOutcome(_ id: UInt64, _ o: ReplyOutcome) {
        if let recorded = recordedOutcomes.removeValue(forKey: id) {
            judge(id, recorded: recorded, replayed: o)
        } else {
            replayedOutcomes[id] = o
        }
    }

    func judge(_ id: UInt64, recorded: ReplyOutcome, replayed: ReplyOutcome) {
        guard let s = sent.removeValue(forKey: id) else { return }
        switch OutcomeComparison.compare(recorded: recorded, replayed: replayed, effectLength: s.effectLength) {
        case .match:
            report.matched += 1
        case .matchAsFarAsKnown:
            report.matched += 1
            driver.report.matchedStatusOnly += 1
        case .differ(let a, let b):
            report.differed += 1
            var e = s.entry
            e.recorded = a
            e.replayed = b
            driver.report.listDifference(e)
        case .notCompared:
            report.notCompared += 1
        }
        driver.connectionProgressed(self)
    }

    func entry(_ r: RecordedRequest) -> ReplayReport.Entry {
        ReplayReport.Entry(connection: number, id: r.id, command: r.header.command, flags: r.header.flags,
                           offset: r.header.offset, length: r.effectLength, recorded: "", replayed: "")
    }

    func notSendable(_ r: RecordedRequest, _ why: String) {
        report.skipped += 1
        var e = entry(r)
        e.replayed = why
        driver.report.listSkipped(e)
        if recordedOutcomes.removeValue(forKey: r.id) == nil { notSent.insert(r.id) }
    }

    // MARK: Starting

    /// Ready to connect: the recorded negotiation is known and this connection is not
    /// waiting for another.
    var readyToStart: Bool { phase == .waiting && recordedNegotiation != nil && after.isEmpty && report.problem == nil }

    func started(_ channel: Channel) {
        self.channel = channel
        phase = .negotiating
        lastSendUptime = NIODeadline.now().uptimeNanoseconds
        lastHeard = lastSendUptime
        let timeout = driver.configuration.replyTimeout
        if timeout > 0 {
            watchdog = channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
                let waiting = phase == .negotiating || (phase == .transmitting && !inFlight.isEmpty)
                if waiting, NIODeadline.now().uptimeNanoseconds - lastHeard > UInt64(timeout * 1e9) {
                    fail("no answer from the upstream for \(Int(timeout)) s (--reply-timeout)")
                }
            }
        }
        negotiator = ReplayNegotiator(recorded: recordedNegotiation!, exportName: driver.configuration.exportName)
        for n in negotiator!.notReplayed { report.negotiation.append("not replayed: \(n)") }
    }

    /// The connection could not be replayed (or not further): every request left is
    /// reported not sent, with the reason.
    func fail(_ why: String) {
        if report.problem == nil { report.problem = why }
        drainUnsent("not sent: \(why)")
        if let ch = channel, phase != .done { phase = .closing; ch.close(promise: nil) } else if channel == nil { finishIfEnded() }
    }

    func drainUnsent(_ why: String) {
        while let item = queue.popFirst() {
            if case .request(let r) = item {
                queuedBytes -= Self.cost(r)
                driver.queuedBytes -= Self.cost(r)
                notSendable(r, why)
            } else if case .end = item {
                queue.append(item)
                break
            }
        }
    }

    /// A connection that cannot be replayed (TLS, no upstream) is over once its recording is.
    func finishIfEnded() {
        guard channel == nil, recordedEnded, phase != .done, report.problem != nil else { return }
        drainUnsent("not sent: \(report.problem ?? "the connection was not replayed")")
        phase = .done
        driver.connectionFinished(self)
    }

    // MARK: Upstream bytes

    func received(_ buffer: ByteBuffer) {
        lastHeard = NIODeadline.now().uptimeNanoseconds
        let now = wallClockNanoseconds()
        tap.feed(.serverToClient, buffer, at: now, logText: &logText)
        let events = tap.events
        tracker.announce(events)
        tracker.slice(buffer, at: serverOffset)
        serverOffset += UInt64(buffer.readableBytes)
        for e in events { handle(e) }
        if tap.decoder.isBroken(.serverToClient), phase != .closing, phase != .done {
            let why = events.compactMap { e -> String? in if case .violation(let v) = e.kind { return v.reason }; return nil }.last
            fail("the upstream's replies could not be decoded: \(why ?? "broken framing")")
            return
        }
        pump()
    }

    func handle(_ e: ConversationEvent) {
        switch e.kind {
        case .transmissionStarted(let i):
            info = i
            compareNegotiation(replayed: i)
            if recordedNegotiation?.known == false {
                report.notes.append("the recording starts after its handshake: what was written before it is not replayed, so reads of that data may differ")
            }
            phase = .transmitting
        case .completed(let c):
            let outcome = tracker.completed(c)
            if let id = inFlight.removeValue(forKey: c.request.cookie) { replayedOutcome(id, outcome) }
        case .serverGreeting, .clientFlags, .option, .optionReply, .exportNameReply, .request, .simpleReply, .replyChunk,
             .payload, .tlsStarted, .opaque, .violation, .compliance, .gap, .skipped, .closed:
            break
        }
        if phase == .negotiating, var n = negotiator {
            let step = n.handle(e.kind)
            negotiator = n
            switch step {
            case .send(let bytes):
                if bytes.readableBytes > 0 { send(bytes, nil); channel?.flush() }
            case .finished(let bytes):
                if bytes.readableBytes > 0 { send(bytes, nil) }
                compareNegotiation(replayed: nil)
                drainUnsent("not sent: the negotiation with the upstream did not reach transmission")
                closeAfterWrites()
            }
        }
    }

    /// The negotiation's differences from the recording's, once it is over (transmission
    /// started, or never will).
    func compareNegotiation(replayed: TransmissionInfo?) {
        guard let r = recordedNegotiation else { return }
        let (d, notes) = NegotiationComparison.differences(recorded: r, replayed: replayed, options: negotiator?.results ?? [])
        report.negotiation += d
        report.notes += notes
    }

    func send(_ header: ByteBuffer, _ payload: ByteBuffer?) {
        guard let ch = channel else { return }
        let now = wallClockNanoseconds()
        tap.feed(.clientToServer, header, at: now, logText: &logText)
        for e in tap.events {
            if case .request(let r) = e.kind { tracker.request(r) }
        }
        ch.write(header, promise: nil)
        if let payload {
            tap.feed(.clientToServer, payload, at: now, logText: &logText)
            ch.write(payload, promise: nil)
        }
    }

    func closeAfterWrites() {
        guard let ch = channel, phase != .closing, phase != .done else { return }
        phase = .closing
        ch.writeAndFlush(allocator.buffer(capacity: 0)).whenComplete { _ in ch.close(promise: nil) }
    }

    // MARK: Sending

    func pump() {
        driver.flushLog(self)
        guard phase == .transmitting, let ch = channel, let info else {
            if phase == .waiting { finishIfEnded() }
            return
        }
        var wrote = false
        loop: while let item = queue.first {
            switch item {
            case .request(let r):
                guard ch.isWritable, inFlight.count < max(1, r.depth) else { break loop }
                if case .scaled(let k) = driver.configuration.timing {
                    let gap = r.time > lastRecordedTime ? r.time - lastRecordedTime : 0
                    let due = lastSendUptime + UInt64(Double(gap) * k)
                    let now = NIODeadline.now().uptimeNanoseconds
                    if due > now {
                        if !timerPending {
                            timerPending = true
                            ch.eventLoop.scheduleTask(deadline: .uptimeNanoseconds(due)) { [self] in
                                timerPending = false
                                pump()
                            }
                        }
                        break loop
                    }
                }
                queue.removeFirst()
                queuedBytes -= Self.cost(r)
                driver.queuedBytes -= Self.cost(r)
                lastRecordedTime = max(lastRecordedTime, r.time)
                lastSendUptime = NIODeadline.now().uptimeNanoseconds
                let cookie = nextCookie
                nextCookie += 1
                switch RequestEncoder.encode(r, cookie: cookie, info: info, fill: driver.configuration.fill, allocator: allocator) {
                case .skip(let why):
                    notSendable(r, why)
                case .send(let header, let payload):
                    sent[r.id] = Sent(entry: entry(r), effectLength: r.effectLength)
                    report.sent += 1
                    send(header, payload)
                    wrote = true
                    if case .disc = r.header.command {
                        replayedOutcome(r.id, ReplyOutcome(status: .noReply))
                    } else {
                        inFlight[cookie] = r.id
                    }
                }
            case .end:
                guard inFlight.isEmpty else { break loop }
                queue.removeFirst()
                if wrote { ch.flush() }
                closeAfterWrites()
                return
            case .negotiation, .outcome, .skipped:
                queue.removeFirst()
            }
        }
        if wrote { ch.flush() }
        driver.connectionProgressed(self)
    }

    /// The upstream closed (or the connect failed after starting).
    func inactive() {
        watchdog?.cancel()
        watchdog = nil
        guard phase != .done else { return }
        let now = wallClockNanoseconds()
        tracker.closeServerStream()
        for d in [StreamDirection.clientToServer, .serverToClient] {
            tap.finish(d, at: now, logText: &logText, cutByRelay: d == .clientToServer)
            for e in tap.events { handle(e) }
        }
        tap.close(at: now, logText: &logText)
        // Requests the decoder never saw complete (it saw them all; this is belt and braces).
        for (_, id) in inFlight { replayedOutcome(id, ReplyOutcome(status: .abandoned)) }
        inFlight = [:]
        if phase != .closing, report.problem == nil {
            report.problem = "the upstream closed the connection before the replay ended"
        }
        drainUnsent("not sent: the upstream closed the connection")
        channel = nil
        phase = .done
        driver.connectionFinished(self)
    }
}
