import NBDProtocol

/// What nbdtap does with one transmission request.
public enum RequestDecision: Hashable, Sendable {
    /// Send this header upstream (the client's, possibly with flags rewritten) and relay
    /// the reply.
    case forward(RequestHeader)
    /// Reply to the client with this error without contacting the upstream. The request's
    /// `payloadLength` bytes (a WRITE's data, or an extended request's PAYLOAD_LEN payload)
    /// must still be read from the client and discarded before the next header, and the
    /// reply goes out as the negotiated reply style requires (simple, or a structured or
    /// extended error chunk).
    case answer(ErrorValue, AnswerReason)
    /// Serve a WRITE_ZEROES by sending these WRITEs of zeroes upstream (see `ZeroWrites`).
    case emulateZero(ZeroWrites)
}

/// Why nbdtap answered a request itself; for the log, and so tests can say which rule hit.
public enum AnswerReason: Hashable, Sendable, CustomStringConvertible {
    /// `--read-only` and the command writes: EPERM.
    case readOnly(NBDCommand)
    /// The request carries a command flag whose transmission flag nbdtap hides: EINVAL.
    case hiddenFlag(CommandFlags)
    /// The command's transmission flag is hidden by nbdtap: EINVAL.
    case hiddenCommand(NBDCommand)
    /// `--fastzeromode slow`: ENOTSUP without asking the upstream.
    case fastZeroSlow
    /// A fast zero on emulated write zeroes: writing zeroes is never faster than writing
    /// (nbdkit's core rejects these the same way): ENOTSUP.
    case fastZeroEmulated
    /// Flags WRITE_ZEROES cannot carry, on a WRITE_ZEROES nbdtap serves itself: EINVAL.
    case invalidFlags(CommandFlags)
    /// offset + length passes 2^64, past the end of any export: ENOSPC, as for any
    /// write zeroes past the end.
    case beyondAddressSpace
    /// The range passes the end of the export, on a WRITE_ZEROES nbdtap serves itself:
    /// ENOSPC (nbdkit's answer), before any piece is written.
    case beyondExport(size: UInt64)

    public var description: String {
        switch self {
        case .readOnly(let command): return "\(command.name) on an export nbdtap shows read-only"
        case .hiddenFlag(let flags): return "\(flags.names.joined(separator: "|")) not advertised by nbdtap"
        case .hiddenCommand(let command): return "\(command.name) not advertised by nbdtap"
        case .fastZeroSlow: return "fast zero refused (fastzeromode=slow)"
        case .fastZeroEmulated: return "fast zero refused: write zeroes are emulated"
        case .invalidFlags(let flags): return "flags \(flags.names.joined(separator: "|")) invalid on WRITE_ZEROES"
        case .beyondAddressSpace: return "offset + length beyond 2^64"
        case .beyondExport(let size): return "range past the end of the export (size \(size))"
        }
    }
}
