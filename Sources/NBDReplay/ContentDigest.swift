import NIOCore

/// A 64-bit digest of a byte sequence, fed in pieces of any size: the same bytes give the
/// same digest however they were split (a server's chunks, a capture's frames). Not a
/// cryptographic hash: it tells a replayed READ's data from the recorded one, it does not
/// resist someone crafting a collision. Eight bytes at a time, so hashing keeps up with
/// the link.
public struct ContentDigest: Hashable, Sendable {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    /// Bytes of a word not yet complete (fewer than eight).
    var tail: UInt64 = 0
    var tailCount = 0
    public private(set) var count: UInt64 = 0

    public init() {}

    @inline(__always)
    mutating func mix(_ word: UInt64) {
        var k = word &* 0x87C3_7B91_1142_53D5
        k = (k << 31) | (k >> 33)
        k = k &* 0x4CF5_AD43_2745_937F
        state ^= k
        state = ((state << 27) | (state >> 37)) &* 5 &+ 0x52DC_E729
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        count &+= UInt64(bytes.count)
        var i = 0
        let n = bytes.count
        while tailCount > 0 && i < n {
            tail |= UInt64(bytes[i]) << (8 * UInt64(tailCount))
            tailCount += 1
            i += 1
            if tailCount == 8 { mix(tail); tail = 0; tailCount = 0 }
        }
        while i + 8 <= n {
            mix(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            i += 8
        }
        while i < n {
            tail |= UInt64(bytes[i]) << (8 * UInt64(tailCount))
            tailCount += 1
            i += 1
        }
    }

    public mutating func update(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { update($0) }
    }

    /// `length` zero bytes (a hole reads as zeroes).
    public mutating func updateZeros(_ length: UInt64) {
        var left = length
        let zeros = [UInt8](repeating: 0, count: 4096)
        zeros.withUnsafeBytes { z in
            while left > 0 {
                let n = Int(min(left, 4096))
                update(UnsafeRawBufferPointer(rebasing: z[0..<n]))
                left -= UInt64(n)
            }
        }
    }

    /// The digest of everything fed so far.
    public var value: UInt64 {
        var s = state
        if tailCount > 0 {
            var d = self
            d.mix(tail ^ (UInt64(tailCount) << 56))
            s = d.state
        }
        s ^= count
        s ^= s >> 33
        s = s &* 0xFF51_AFD7_ED55_8CCD
        s ^= s >> 33
        s = s &* 0xC4CE_B9FE_1A85_EC53
        s ^= s >> 33
        return s
    }

    /// As printed in reports.
    public var hex: String {
        let h = String(value, radix: 16)
        return String(repeating: "0", count: 16 - h.count) + h
    }
}
