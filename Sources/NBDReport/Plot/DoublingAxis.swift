/// A time or offset axis cut into a fixed number of bins whose width doubles (merging
/// neighbours pairwise) whenever a value lands past the last bin. Memory stays fixed
/// however long a proxy runs or however large an export is, and a bin never moves once
/// it holds a value, it only merges: that is what keeps the picture bounded.
struct DoublingAxis: Sendable {
    let bins: Int
    let origin: UInt64
    /// A power of two, so a doubling halves every index exactly.
    private(set) var width: UInt64

    init(bins: Int, origin: UInt64, width: UInt64) {
        self.bins = bins
        self.origin = origin
        var w: UInt64 = 1
        while w < width && w < 1 << 62 { w <<= 1 }
        self.width = w
    }

    /// The doublings `value` needs before it fits (0: it fits now).
    func doublingsNeeded(_ value: UInt64) -> Int {
        guard value > origin else { return 0 }
        var w = width
        var n = 0
        let d = value - origin
        while d / w >= UInt64(bins) && w < 1 << 62 {
            w <<= 1
            n += 1
        }
        return n
    }

    mutating func double() { if width < 1 << 62 { width <<= 1 } }

    /// The bin of `value`, clamped to the axis (values before the origin fall in bin 0).
    func index(_ value: UInt64) -> Int {
        guard value > origin else { return 0 }
        return Int(min((value - origin) / width, UInt64(bins - 1)))
    }

    /// Where bin `i` starts.
    func start(_ i: Int) -> UInt64 { origin &+ UInt64(i) &* width }
}

/// Values per bin and per series on a doubling axis: merging bins merges their sums.
struct DoublingSeries: Sendable {
    var axis: DoublingAxis
    let series: Int
    var values: [UInt64]

    init(axis: DoublingAxis, series: Int) {
        self.axis = axis
        self.series = series
        self.values = Array(repeating: 0, count: axis.bins * series)
    }

    /// Adds `amount` spread over [from, to) in proportion to each bin's overlap (all of it
    /// in one bin when the span is empty), so that a long request shows as a rate over its
    /// time rather than a spike at its start. The parts add up to `amount` exactly.
    mutating func spread(_ amount: UInt64, from: UInt64, to: UInt64, series s: Int) {
        let end = max(to, from)
        for _ in 0..<axis.doublingsNeeded(end) { double() }
        let first = axis.index(from)
        let last = axis.index(end)
        guard first < last, end > from, from >= axis.origin else {
            values[first * series + s] &+= amount
            return
        }
        var given: UInt64 = 0
        for i in first..<last {
            let overlap = min(axis.start(i + 1), end) - max(axis.start(i), from)
            let part = UInt64(Double(amount) * Double(overlap) / Double(end - from))
            values[i * series + s] &+= part
            given &+= part
        }
        values[last * series + s] &+= amount &- given
    }

    mutating func double() {
        var merged = Array(repeating: UInt64(0), count: values.count)
        for i in 0..<axis.bins {
            for s in 0..<series { merged[(i / 2) * series + s] &+= values[i * series + s] }
        }
        values = merged
        axis.double()
    }

    /// Bins up to the last with a value.
    var usedBins: Int {
        var last = -1
        for i in 0..<axis.bins where (0..<series).contains(where: { values[i * series + $0] != 0 }) { last = i }
        return last + 1
    }
}
