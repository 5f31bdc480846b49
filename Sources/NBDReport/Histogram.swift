/// A latency histogram with about 1.5% relative precision and fixed memory (log-linear
/// buckets, 64 per power of two), so percentiles over millions of requests cost nothing
/// per request beyond an increment.
public struct LatencyHistogram: Sendable, Equatable {
    static let subBits = 6
    static let sub = 1 << subBits
    var counts: [UInt64] = []
    public private(set) var count: UInt64 = 0
    public private(set) var min: UInt64 = .max
    public private(set) var max: UInt64 = 0
    public private(set) var sum: UInt64 = 0

    public init() {}

    static func index(_ v: UInt64) -> Int {
        if v < UInt64(sub) { return Int(v) }
        let msb = 63 - v.leadingZeroBitCount
        let shift = msb - subBits
        let mantissa = Int(v >> UInt64(shift)) - sub
        return sub + shift * sub + mantissa
    }

    /// The midpoint of the values a bucket holds.
    static func value(_ index: Int) -> UInt64 {
        if index < sub { return UInt64(index) }
        let shift = (index - sub) / sub
        let mantissa = (index - sub) % sub + sub
        let low = UInt64(mantissa) << UInt64(shift)
        return low + ((UInt64(1) << UInt64(shift)) >> 1)
    }

    public mutating func record(_ v: UInt64) {
        let i = Self.index(v)
        if counts.count <= i { counts.append(contentsOf: repeatElement(0, count: i + 1 - counts.count)) }
        counts[i] += 1
        count += 1
        sum &+= v
        if v < min { min = v }
        if v > max { max = v }
    }

    public mutating func merge(_ other: LatencyHistogram) {
        if counts.count < other.counts.count { counts.append(contentsOf: repeatElement(0, count: other.counts.count - counts.count)) }
        for (i, c) in other.counts.enumerated() { counts[i] += c }
        count += other.count
        sum &+= other.sum
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
    }

    /// The value below which `p` percent of the recordings fall, clamped to [min, max].
    public func percentile(_ p: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        let rank = UInt64((p / 100 * Double(count)).rounded(.up))
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() where c > 0 {
            seen += c
            if seen >= Swift.max(rank, 1) { return Swift.min(Swift.max(Self.value(i), min), max) }
        }
        return max
    }
}
