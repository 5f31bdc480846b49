import NIOCore

/// The data of one READ's reply put back in the export's order and digested: a server may
/// answer in several OFFSET_DATA and OFFSET_HOLE chunks, in any order, and a capture
/// splits them into frames, so two replies with the same bytes must give the same digest
/// however they were cut. Pieces that arrive in order are digested at once; pieces ahead
/// of a hole are held (copied, up to `maxHeld` bytes) until it fills.
struct ReadAssembler {
    enum Piece {
        case data(ByteBuffer)
        case zeros(UInt64)

        var length: UInt64 {
            switch self {
            case .data(let b): return UInt64(b.readableBytes)
            case .zeros(let n): return n
            }
        }
    }

    /// Bytes held out of order, at most, before the data is declared unknown.
    static let maxHeld = 64 << 20

    let length: UInt64
    var digest = ContentDigest()
    /// Position (from the request's offset) up to which the data is digested.
    var next: UInt64 = 0
    var held: [UInt64: Piece] = [:]
    var heldBytes = 0
    /// Why the data cannot be compared, once known.
    var problem: String?

    /// READs longer than this are compared by status only: servers refuse more than
    /// 32 MiB anyway, and a bound keeps a crafted capture (a hole of 4 GiB in a READ of
    /// 2^63 bytes, many times) from costing minutes of hashing zeroes.
    static let maxLength: UInt64 = 64 << 20

    init(length: UInt64) {
        self.length = length
        if length > Self.maxLength { problem = "a READ of \(length) bytes is compared by status only (more than \(Self.maxLength))" }
    }

    mutating func add(_ piece: Piece, at position: UInt64) {
        guard problem == nil, piece.length > 0 else { return }
        if position < next || position > length || piece.length > length - position {
            problem = "reply data at \(position)+\(piece.length) overlaps other data or lies outside the request's \(length) bytes"
            return
        }
        if position > next {
            if held[position] != nil {
                problem = "two reply chunks start at \(position)"
                return
            }
            var own = piece
            if case .data(let b) = piece {
                // The frame buffer is reused: a held piece needs bytes of its own.
                var copy = ByteBufferAllocator().buffer(capacity: b.readableBytes)
                copy.writeImmutableBuffer(b)
                own = .data(copy)
                heldBytes += b.readableBytes
            }
            if heldBytes > Self.maxHeld {
                problem = "more than \(Self.maxHeld) bytes of reply data arrived ahead of a hole"
                held = [:]
                return
            }
            held[position] = own
            return
        }
        take(piece)
        while let p = held.removeValue(forKey: next) {
            if case .data(let b) = p { heldBytes -= b.readableBytes }
            take(p)
        }
    }

    mutating func take(_ piece: Piece) {
        switch piece {
        case .data(let b): digest.update(b)
        case .zeros(let n): digest.updateZeros(n)
        }
        next += piece.length
    }

    /// Some of the data is missing from the capture.
    mutating func lose(_ reason: String) {
        if problem == nil { problem = reason }
        held = [:]
    }

    /// The summary of a successful reply.
    var summary: DataSummary {
        if let problem { return .unknown(problem) }
        if next != length { return .unknown("the reply's chunks cover \(next) of \(length) bytes") }
        return .digest(digest)
    }
}
