import NBDProtocol
import NIOCore
import Testing

/// A message written by hand from the spec layout: one hex string per field, so each
/// field gets its own comment at the call site. Whitespace and `_` inside a field are
/// ignored. The project's encoders are never used to build expected bytes.
func hex(_ fields: String...) -> ByteBuffer {
    var out = ByteBuffer()
    for field in fields {
        let digits = Array(field.filter { !$0.isWhitespace && $0 != "_" })
        precondition(digits.count % 2 == 0, "odd number of hex digits in \(field)")
        var i = 0
        while i < digits.count {
            out.writeInteger(UInt8(String(digits[i..<i + 2]), radix: 16)!)
            i += 2
        }
    }
    return out
}

/// `n` zero bytes as hex (the 124 reserved bytes of the oldstyle greeting and the
/// EXPORT_NAME reply).
func zeroHex(_ n: Int) -> String { String(repeating: "00", count: n) }

/// The readable bytes as lowercase hex, so failed comparisons show a readable diff.
func hexString(_ buffer: ByteBuffer) -> String {
    let digits = Array("0123456789abcdef")
    var s = ""
    for b in buffer.readableBytesView {
        s.append(digits[Int(b >> 4)])
        s.append(digits[Int(b & 0x0f)])
    }
    return s
}

/// The bytes a writer produces into a fresh buffer.
func serialized(_ write: (inout ByteBuffer) -> Void) -> ByteBuffer {
    var b = ByteBuffer()
    write(&b)
    return b
}

/// Round-trip assertion: the serialized bytes equal the hand-written ones exactly.
func expectBytes(_ actual: ByteBuffer, _ expected: ByteBuffer, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(hexString(actual) == hexString(expected), sourceLocation: sourceLocation)
}

/// Runs `body` and returns the WireError it threw, recording an issue if it threw
/// nothing or something else.
func wireError<T>(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T) -> WireError? {
    do {
        let value = try body()
        Issue.record("expected a WireError, got \(value)", sourceLocation: sourceLocation)
        return nil
    } catch let e as WireError {
        return e
    } catch {
        Issue.record("expected a WireError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

extension WireError {
    var badMagicValue: UInt64? { if case .badMagic(_, let got) = self { return got }; return nil }
    var badLengthValue: UInt64? { if case .badLength(_, let length, _) = self { return length }; return nil }
    var isTruncated: Bool { if case .truncated = self { return true }; return false }
    var isInconsistent: Bool { if case .inconsistent = self { return true }; return false }
}
