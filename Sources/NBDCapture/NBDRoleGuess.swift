import NBDProtocol
import NIOCore

/// Which side of a connection sent a stream.
public enum StreamRole: Hashable, Sendable {
    case client
    case server
}

/// Tells client from server by what they send, for connections whose handshake is not
/// in the capture and whose ports say nothing: only a server sends "NBDMAGIC", option
/// replies and reply magics; only a client sends "IHAVEOPT" options and request magics.
public enum NBDRoleGuess {
    /// The role implied by the message starting at the first byte of `bytes`, or nil if
    /// it starts with no NBD magic (or too few bytes are there yet).
    public static func role(ofStreamStartingWith bytes: ByteBuffer) -> StreamRole? {
        role(in: bytes, at: bytes.readerIndex)
    }

    /// The role implied by the first NBD magic found in the first `limit` bytes, for
    /// streams picked up mid-message (the capture may start inside a READ payload).
    /// Data could contain a magic by chance, so prefer `role(ofStreamStartingWith:)`.
    public static func firstRole(in bytes: ByteBuffer, limit: Int = 65_536) -> StreamRole? {
        let end = bytes.readerIndex + min(bytes.readableBytes, limit)
        var i = bytes.readerIndex
        while i + 4 <= end {
            if let r = role(in: bytes, at: i) { return r }
            i += 1
        }
        return nil
    }

    /// Given the first bytes each endpoint sent (`a` from one side, `b` from the other),
    /// whether `a`'s sender is the server: true/false, or nil when the content does not
    /// decide (nothing recognisable, or both sides look alike).
    public static func firstIsServer(_ a: ByteBuffer, _ b: ByteBuffer) -> Bool? {
        let ra = role(ofStreamStartingWith: a) ?? firstRole(in: a)
        let rb = role(ofStreamStartingWith: b) ?? firstRole(in: b)
        switch (ra, rb) {
        case (.server, .server), (.client, .client), (nil, nil): return nil
        case (.server, _), (_, .client): return true
        case (.client, _), (_, .server): return false
        }
    }

    private static func role(in b: ByteBuffer, at i: Int) -> StreamRole? {
        if let m64 = b.getInteger(at: i, as: UInt64.self) {
            switch m64 {
            case NBDMagic.initPasswd, NBDMagic.optionReply: return .server
            case NBDMagic.iHaveOpt: return .client
            default: break
            }
        }
        guard let m32 = b.getInteger(at: i, as: UInt32.self) else { return nil }
        switch m32 {
        case NBDMagic.request, NBDMagic.extendedRequest: return .client
        case NBDMagic.simpleReply, NBDMagic.structuredReply, NBDMagic.extendedReply: return .server
        default: return nil
        }
    }
}
