import NBDConversation
import NIOCore

/// One step of one NBD connection of a capture, as `CaptureSessions` decodes it: what a
/// consumer beside the log and statistics (the replayer) needs to follow the connection,
/// namely the bytes with the stream offset they start at and the events they produced.
/// The bytes are a slice of the capture's frame buffer: copy what must outlive the call.
public enum SessionObservation {
    /// NBD was recognised on a TCP connection; `connection` is its number in logs.
    case started(connection: Int, info: ConnectionInfo)
    case fed(connection: Int, direction: StreamDirection, streamOffset: UInt64, bytes: ByteBuffer, events: [ConversationEvent])
    /// `length` bytes from `streamOffset` on are missing from the capture.
    case gap(connection: Int, direction: StreamDirection, streamOffset: UInt64, length: UInt64, events: [ConversationEvent])
    /// The events of one direction's end (requests abandoned, a truncated message).
    case ended(connection: Int, events: [ConversationEvent])
    /// The connection is over; nothing more comes for this number.
    case closed(connection: Int, time: UInt64)
}
