import NBDProtocol

/// A place where a real peer departs from the spec text and nbdtap follows the peer: the
/// stream is framed as the peer frames it and nothing is refused, but a person debugging
/// interoperability wants to see it. An event comes each time (the statistics count them
/// all); logs print the first of each kind on a connection, as qemu 10 earns one on every
/// WRITE.
public struct ComplianceNote: Hashable, Sendable {
    public enum Code: String, Hashable, Sendable, CaseIterable {
        /// NBD_CMD_WRITE under extended headers without NBD_CMD_FLAG_PAYLOAD_LEN: the
        /// extension says the flag MUST be set; qemu 10 (qemu-img, qemu-io, the block
        /// driver) omits it and qemu-nbd 10 serves such writes, tracing
        /// nbd_co_receive_ext_payload_compliance. The header's length is the payload length.
        case writeWithoutPayloadLen = "write_without_payload_len"
    }

    public var code: Code
    public var reason: String
    /// The peer implementations known to behave this way, for the log line.
    public var seenIn: String
    /// 1 for the first note of this code on the connection, then 2, 3, ...
    public var occurrence: UInt64

    public init(_ code: Code, _ reason: String, seenIn: String, occurrence: UInt64 = 1) {
        self.code = code
        self.reason = reason
        self.seenIn = seenIn
        self.occurrence = occurrence
    }
}
