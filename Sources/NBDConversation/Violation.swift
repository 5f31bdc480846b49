import NBDProtocol

/// A departure from the spec, reported as an event with a plain-English reason. Fatal
/// ones mean the stream can no longer be framed: a proxy closes the connection.
public struct ProtocolViolation: Hashable, Sendable {
    public enum Code: String, Hashable, Sendable, CaseIterable {
        case badMagic = "bad_magic"
        case badLength = "bad_length"
        case malformedPayload = "malformed_payload"
        case tooLarge = "too_large"
        case unexpectedData = "unexpected_data"
        case unknownClientFlags = "unknown_client_flags"
        case optionBeforeReply = "option_before_reply"
        case optionNotAllowed = "option_not_allowed"
        case replyForOtherOption = "reply_for_other_option"
        case unexpectedReplyType = "unexpected_reply_type"
        case unknownCookie = "unknown_cookie"
        case duplicateCookie = "duplicate_cookie"
        case commandNotAdvertised = "command_not_advertised"
        case flagNotAdvertised = "flag_not_advertised"
        case flagNotValid = "flag_not_valid"
        case beyondExportSize = "beyond_export_size"
        case writeOnReadOnly = "write_on_read_only"
        case replyFormatNotNegotiated = "reply_format_not_negotiated"
        case chunkNotValidForCommand = "chunk_not_valid_for_command"
        case unknownChunkType = "unknown_chunk_type"
        case afterDisconnect = "after_disconnect"
        case truncated = "truncated"
    }

    public var code: Code
    public var reason: String
    public var fatal: Bool

    public init(_ code: Code, _ reason: String, fatal: Bool = false) {
        self.code = code
        self.reason = reason
        self.fatal = fatal
    }
}
