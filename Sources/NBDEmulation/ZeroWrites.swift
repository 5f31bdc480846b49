/// One NBD_CMD_WRITE of zeroes the proxy sends upstream while emulating WRITE_ZEROES.
public struct ZeroWrite: Hashable, Sendable {
    public var offset: UInt64
    public var length: UInt32
    /// Set on every piece when the client asked for FUA: FUA covers only the request that
    /// carries it, so a flag on the last piece alone would leave the earlier ones volatile.
    /// nbdkit 1.32 does the same with a plugin that has native FUA (fixture nozero.json,
    /// `zero FUA 100MiB` under emulate: both pwrites carry `fua`).
    public var fua: Bool

    public init(offset: UInt64, length: UInt32, fua: Bool) {
        self.offset = offset
        self.length = length
        self.fua = fua
    }
}

/// The WRITEs that emulate one WRITE_ZEROES: consecutive pieces of `pieceLength` bytes
/// (the last one shorter), computed on demand. A collection rather than an array because
/// an extended-header request may cover far more pieces than fit in memory; for a compact
/// request (≤ 4 GiB) there are at most 128 at the default 32 MiB.
///
/// The proxy sends them in order, stops at the first error and answers the client with it
/// (nbdkit's emulation does the same), and answers success after the last. An empty
/// collection (a zero-length request) is answered with success at once.
public struct ZeroWrites: RandomAccessCollection, Hashable, Sendable {
    public let offset: UInt64
    public let length: UInt64
    public let pieceLength: UInt32
    public let fua: Bool

    /// Pieces when the upstream did not say its maximum payload: the size every server
    /// must accept (the spec's default maximum), and a zero buffer the proxy can keep.
    public static let defaultPieceLength: UInt32 = 32 << 20
    /// The spec requires a maximum payload of at least the preferred block size, itself at
    /// least 512; a smaller claim is wrong and would make the piece count overflow.
    public static let minimumPieceLength: UInt32 = 512

    /// The piece length for an upstream maximum payload: that maximum, but never above
    /// 32 MiB (an upstream saying "no limit", 0xffffffff, must not cost a 4 GiB buffer)
    /// nor below 512.
    public static func pieceLength(maxPayload: UInt32?) -> UInt32 {
        guard let maxPayload else { return defaultPieceLength }
        return Swift.max(Swift.min(maxPayload, defaultPieceLength), minimumPieceLength)
    }

    /// nil when `offset + length` passes 2^64: no export can hold that range.
    public init?(offset: UInt64, length: UInt64, maxPayload: UInt32?, fua: Bool) {
        guard offset.addingReportingOverflow(length).overflow == false else { return nil }
        self.offset = offset
        self.length = length
        self.pieceLength = Self.pieceLength(maxPayload: maxPayload)
        self.fua = fua
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int {
        let piece = UInt64(pieceLength)
        return Int(length / piece + (length % piece == 0 ? 0 : 1))
    }

    public subscript(position: Int) -> ZeroWrite {
        precondition(position >= startIndex && position < endIndex, "ZeroWrites index out of range")
        let start = UInt64(position) * UInt64(pieceLength)
        let pieceLength = Swift.min(UInt64(self.pieceLength), length - start)
        return ZeroWrite(offset: offset + start, length: UInt32(pieceLength), fua: fua)
    }
}
