import Testing
import NBDConversation
import NBDReport
import NIOCore

@Test func printStructured() throws {
    let t = try loadTranscript("nbdsh-all-structured")
    var tap = ConversationTap(connection: 1, logFormat: .nbdkit)
    var text = ""
    for r in t.records { tap.feed(r.direction, r.bytes, at: r.time, logText: &text) }
    tap.close(at: t.records.last!.time, logText: &text)
    print(text)
}
