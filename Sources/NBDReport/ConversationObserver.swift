import NBDConversation

/// What else wants a connection's events besides its log and statistics: the picture
/// (`plot`) and the live metrics. Fed from `ConversationTap`, so whatever it shows comes
/// from the same events as the log and the statistics, live or offline. The proxy calls
/// it from every connection's event loop at once, hence `Sendable`.
public protocol ConversationObserver: AnyObject, Sendable {
    /// The events of one feed of connection `connection`; the array is reused after the call.
    func observe(_ events: [ConversationEvent], connection: Int)
}

/// Several observers as one (a picture and metrics together).
public final class ObserverGroup: ConversationObserver {
    let members: [any ConversationObserver]

    public init(_ members: [any ConversationObserver]) { self.members = members }

    public func observe(_ events: [ConversationEvent], connection: Int) {
        for m in members { m.observe(events, connection: connection) }
    }

    /// nil for none, the one itself for one, a group otherwise.
    public static func combining(_ members: [any ConversationObserver]) -> (any ConversationObserver)? {
        switch members.count {
        case 0: return nil
        case 1: return members[0]
        default: return ObserverGroup(members)
        }
    }
}
