import NBDConversation
import NBDProtocol

/// The two log formats: nbdkit's log filter grammar, and one JSON object per line.
public enum LogFormat: String, Sendable, CaseIterable {
    case nbdkit
    case json
}

/// The action word nbdkit's log filter prints for a command; nbdtap keeps the same words
/// so `grep Zero` and friends work unchanged.
func nbdkitAction(_ c: NBDCommand) -> String {
    switch c {
    case .read: return "Read"
    case .write: return "Write"
    case .disc: return "Disconnect"
    case .flush: return "Flush"
    case .trim: return "Trim"
    case .cache: return "Cache"
    case .writeZeroes: return "Zero"
    case .blockStatus: return "Extents"
    case .resize: return "Resize"
    case .unknown: return "Unknown"
    }
}

/// The parameters nbdkit prints for a request, in its order (`offset=0x.. count=0x..` and
/// the per-command flags, `trim=` being the inverse of NO_HOLE).
func nbdkitParams(_ h: RequestHeader) -> String {
    let range = "offset=0x\(String(h.offset, radix: 16)) count=0x\(String(h.length, radix: 16))"
    let fua = h.flags.contains(.fua) ? 1 : 0
    switch h.command {
    case .read, .cache: return range
    case .write, .trim: return "\(range) fua=\(fua)"
    case .flush, .disc: return ""
    case .writeZeroes:
        return "\(range) trim=\(h.flags.contains(.noHole) ? 0 : 1) fua=\(fua) fast=\(h.flags.contains(.fastZero) ? 1 : 0)"
    case .blockStatus: return "\(range) req_one=\(h.flags.contains(.reqOne) ? 1 : 0)"
    case .resize: return "size=0x\(String(h.offset, radix: 16))"
    case .unknown(let v): return "command=\(v) flags=0x\(String(h.flags.rawValue, radix: 16)) \(range)"
    }
}

/// base:allocation status as nbdkit names extent types.
func extentType(_ status: UInt64) -> String {
    switch (status & BaseAllocation.hole != 0, status & BaseAllocation.zero != 0) {
    case (false, false): return ""
    case (true, false): return "hole"
    case (false, true): return "zero"
    case (true, true): return "hole,zero"
    }
}
