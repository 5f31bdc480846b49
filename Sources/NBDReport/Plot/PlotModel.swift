import NBDProtocol

/// What the picture shows, gathered from requests and their replies, from whichever
/// source: the conversation decoder's events (capture, transcript, proxy) or nbdtap's own
/// JSON log. Bounded: up to `markLimit` requests are kept one by one (each with its log
/// lines); past that the timeline becomes a `PlotGrid` and the marks are dropped, so a
/// day behind a VM or a capture of millions of requests stays the same size.
public struct PlotModel: Sendable {
    public static let markLimit = 5000
    /// Lanes drawn one per connection; later connections share the last lane.
    public static let laneLimit = 8
    /// Requests awaiting their reply, at most (the decoder bounds each connection's too).
    static let pendingLimit = 1 << 20

    public struct Mark: Sendable {
        public var lane: Int
        public var command: Int
        public var flags: CommandFlags
        public var offset: UInt64
        public var length: UInt64
        public var start: UInt64
        public var end: UInt64?
        public var error: String?
        public var text: String
    }

    struct Key: Hashable { var connection: Int; var id: UInt64 }
    struct Pending { var mark: Int?; var lane: Int; var command: Int; var start: UInt64; var offset: UInt64; var length: UInt64 }

    /// Per command: what the summary table and the latency curves show.
    public struct Totals: Sendable {
        public var requests: UInt64 = 0
        public var fast0: UInt64 = 0
        public var fast1: UInt64 = 0
        public var errors: UInt64 = 0
        public var bytes: UInt64 = 0
        public var latency = LatencyHistogram()
    }

    public internal(set) var marks: [Mark] = []
    var grid: PlotGrid?
    var pending: [Key: Pending] = [:]
    /// Connection numbers in the order they were first seen, up to `laneLimit`.
    public internal(set) var laneConnections: [[Int]] = []
    var laneOf: [Int: Int] = [:]
    /// The largest export size or request end seen: the offset axis's top.
    public internal(set) var offsetTop: UInt64 = 0
    public internal(set) var totals = Array(repeating: Totals(), count: PlotClass.count)
    var throughput: DoublingSeries?
    public internal(set) var firstTime: UInt64?
    public internal(set) var lastTime: UInt64 = 0
    /// Requests whose reply never matched one (lost past `pendingLimit`).
    public internal(set) var unmatched: UInt64 = 0

    public init() {}

    public var aggregated: Bool { grid != nil }
    /// Whether a request's log lines are still wanted (they are dropped once aggregated).
    public var wantsText: Bool { grid == nil }

    mutating func lane(_ connection: Int) -> Int {
        if let l = laneOf[connection] { return l }
        if laneConnections.count < Self.laneLimit {
            laneOf[connection] = laneConnections.count
            laneConnections.append([connection])
            return laneConnections.count - 1
        }
        // The shared last lane: its label names the first few connections in it.
        if laneConnections.count == Self.laneLimit { laneConnections.append([]) }
        if laneConnections[Self.laneLimit].count < 16, !laneConnections[Self.laneLimit].contains(connection) {
            laneConnections[Self.laneLimit].append(connection)
        }
        return Self.laneLimit
    }

    /// The export's size, from the handshake: the offset axis covers at least that.
    public mutating func connected(_ connection: Int, size: UInt64) {
        _ = lane(connection)
        offsetTop = max(offsetTop, size)
    }

    public mutating func request(_ connection: Int, id: UInt64, command: NBDCommand, flags: CommandFlags,
                                 offset: UInt64, length: UInt64, time: UInt64, text: String) {
        let l = lane(connection)
        let c = CommandSeries.index(command)
        totals[c].requests += 1
        totals[c].bytes &+= length
        if case .writeZeroes = command {
            if flags.contains(.fastZero) { totals[c].fast1 += 1 } else { totals[c].fast0 += 1 }
        }
        if firstTime == nil { firstTime = time }
        lastTime = max(lastTime, time)
        let (end, overflow) = offset.addingReportingOverflow(length)
        offsetTop = max(offsetTop, overflow ? .max : end)
        if throughput == nil {
            throughput = DoublingSeries(axis: DoublingAxis(bins: 240, origin: time, width: 1 << 14), series: PlotClass.count)
        }
        if grid == nil && marks.count >= Self.markLimit { aggregate() }
        var markIndex: Int?
        if grid != nil {
            addToGrid(lane: l, start: time, offset: offset, class: c, flags: flags)
        } else {
            markIndex = marks.count
            marks.append(Mark(lane: l, command: c, flags: flags, offset: offset, length: length, start: time, end: nil, error: nil, text: text))
        }
        if pending.count < Self.pendingLimit {
            pending[Key(connection: connection, id: id)] = Pending(mark: markIndex, lane: l, command: c, start: time, offset: offset, length: length)
        } else {
            unmatched += 1
        }
    }

    /// A request's end: `error` as the statistics name it (ENOTCONN for an abandoned one),
    /// `latency` only for a reply that came (as the statistics record it).
    public mutating func completed(_ connection: Int, id: UInt64, time: UInt64, error: String?, latency: UInt64?, text: String) {
        lastTime = max(lastTime, time)
        guard let p = pending.removeValue(forKey: Key(connection: connection, id: id)) else { return }
        if let latency { totals[p.command].latency.record(latency) }
        // Throughput counts a request's bytes over the time it took, once it is over.
        throughput?.spread(p.length, from: p.start, to: time, series: p.command)
        if error != nil { totals[p.command].errors += 1 }
        if let m = p.mark, m < marks.count {
            marks[m].end = time
            marks[m].error = error
            if !text.isEmpty { marks[m].text += marks[m].text.isEmpty ? text : "\n" + text }
        } else if error != nil, grid != nil {
            grid!.add(lane: p.lane, start: p.start, offsetValue: p.offset, slotWithin: PlotGrid.errorSlot)
        }
    }

    /// From marks to cells: the marks so far go into a grid and later requests with them.
    mutating func aggregate() {
        let origin = firstTime ?? 0
        grid = PlotGrid(lanes: Self.laneLimit + 1, timeOrigin: origin, timeSpan: lastTime &- origin, offsetSpan: offsetTop)
        for m in marks {
            addToGrid(lane: m.lane, start: m.start, offset: m.offset, class: m.command, flags: m.flags)
            if m.error != nil { grid!.add(lane: m.lane, start: m.start, offsetValue: m.offset, slotWithin: PlotGrid.errorSlot) }
        }
        marks = []
        for (k, var p) in pending {
            p.mark = nil
            pending[k] = p
        }
    }

    mutating func addToGrid(lane: Int, start: UInt64, offset: UInt64, class c: Int, flags: CommandFlags) {
        let s = grid!.slot(lane: lane, start: start, offsetValue: offset)
        grid!.cells[lane][s + c] &+= 1
        if flags.contains(.fua) { grid!.cells[lane][s + PlotGrid.fuaSlot] &+= 1 }
        if flags.contains(.fastZero) { grid!.cells[lane][s + PlotGrid.fastZeroSlot] &+= 1 }
        if flags.contains(.noHole) { grid!.cells[lane][s + PlotGrid.noHoleSlot] &+= 1 }
    }
}
