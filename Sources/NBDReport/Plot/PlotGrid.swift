/// The timeline of a session too long to draw request by request: per lane, a grid of
/// time × offset cells, each counting the requests that start in it by command, with
/// their errors and flags. Both axes double when a value falls past them, so the grid's
/// memory and the page's size are fixed whatever the session's length.
struct PlotGrid: Sendable {
    static let timeBins = 200
    static let offsetBins = 32
    /// Per cell: the ten command counts, then errors, FUA, FAST_ZERO, NO_HOLE.
    static let slots = PlotClass.count + 4
    static let errorSlot = PlotClass.count
    static let fuaSlot = PlotClass.count + 1
    static let fastZeroSlot = PlotClass.count + 2
    static let noHoleSlot = PlotClass.count + 3

    var time: DoublingAxis
    var offset: DoublingAxis
    /// Per lane, allocated when the lane gets its first request.
    var cells: [[UInt32]]

    init(lanes: Int, timeOrigin: UInt64, timeSpan: UInt64, offsetSpan: UInt64) {
        time = DoublingAxis(bins: Self.timeBins, origin: timeOrigin, width: max(1_000_000, timeSpan / UInt64(Self.timeBins) + 1))
        offset = DoublingAxis(bins: Self.offsetBins, origin: 0, width: max(4096, offsetSpan / UInt64(Self.offsetBins) + 1))
        cells = Array(repeating: [], count: lanes)
    }

    /// The slot index of the cell where a request at `start` and `offsetValue` falls,
    /// widening the axes first when it lies past them.
    mutating func slot(lane: Int, start: UInt64, offsetValue: UInt64) -> Int {
        for _ in 0..<time.doublingsNeeded(start) { doubleTime() }
        for _ in 0..<offset.doublingsNeeded(offsetValue) { doubleOffset() }
        if cells[lane].isEmpty { cells[lane] = Array(repeating: 0, count: Self.timeBins * Self.offsetBins * Self.slots) }
        return (time.index(start) * Self.offsetBins + offset.index(offsetValue)) * Self.slots
    }

    mutating func add(lane: Int, start: UInt64, offsetValue: UInt64, slotWithin: Int) {
        let s = slot(lane: lane, start: start, offsetValue: offsetValue)
        cells[lane][s + slotWithin] &+= 1
    }

    /// Cells holding at least one request, over all lanes.
    var occupiedCells: Int {
        var n = 0
        for lane in cells where !lane.isEmpty {
            for c in stride(from: 0, to: lane.count, by: Self.slots) where lane[c..<c + PlotClass.count].contains(where: { $0 > 0 }) { n += 1 }
        }
        return n
    }

    mutating func doubleTime() {
        merge { t, o in (t / 2, o) }
        time.double()
    }

    mutating func doubleOffset() {
        merge { t, o in (t, o / 2) }
        offset.double()
    }

    /// Adds every cell into the one `into` names, lane by lane: the two doublings.
    mutating func merge(into target: (Int, Int) -> (Int, Int)) {
        for l in cells.indices where !cells[l].isEmpty {
            var merged = Array(repeating: UInt32(0), count: cells[l].count)
            for t in 0..<Self.timeBins {
                for o in 0..<Self.offsetBins {
                    let (t2, o2) = target(t, o)
                    let from = (t * Self.offsetBins + o) * Self.slots
                    let to = (t2 * Self.offsetBins + o2) * Self.slots
                    for k in 0..<Self.slots { merged[to + k] &+= cells[l][from + k] }
                }
            }
            cells[l] = merged
        }
    }
}
