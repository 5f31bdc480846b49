import NBDConversation
import NBDProtocol

/// Appending numbers and timestamps to log text without temporary Strings: the proxy
/// writes two lines per request with logging on, and formatting through interpolation
/// cost more than the relay itself on small requests.
enum FastText {
    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends `0x` and the hex digits of `v` (lower case, no padding), as nbdkit prints.
    @inline(__always)
    static func appendHex(_ v: UInt64, to out: inout String) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: "0x" + up to 16 digits
        let n = withUnsafeMutableBytes(of: &digits) { raw -> Int in
            raw[0] = UInt8(ascii: "0")
            raw[1] = UInt8(ascii: "x")
            if v == 0 {
                raw[2] = UInt8(ascii: "0")
                return 3
            }
            let count = (64 - v.leadingZeroBitCount + 3) / 4
            var x = v
            var i = 2 + count - 1
            while i >= 2 {
                raw[i] = hexDigits[Int(x & 0xf)]
                x >>= 4
                i -= 1
            }
            return 2 + count
        }
        withUnsafeBytes(of: &digits) { raw in
            out += String(decoding: UnsafeRawBufferPointer(rebasing: raw[0..<n]), as: UTF8.self)
        }
    }

    /// Appends the decimal digits of `v`.
    @inline(__always)
    static func appendDecimal(_ v: UInt64, to out: inout String) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let n = withUnsafeMutableBytes(of: &digits) { raw -> Int in
            var x = v
            var count = 0
            repeat { count += 1; x /= 10 } while x > 0
            x = v
            var i = count - 1
            while i >= 0 {
                raw[i] = UInt8(ascii: "0") + UInt8(x % 10)
                x /= 10
                i -= 1
            }
            return count
        }
        withUnsafeBytes(of: &digits) { raw in
            out += String(decoding: UnsafeRawBufferPointer(rebasing: raw[0..<n]), as: UTF8.self)
        }
    }
}

/// The `YYYY-MM-DD HH:MM:SS.` part of nbdkit timestamps changes once a second: keep it.
struct TimestampCache {
    var second: UInt64 = .max
    var prefix = ""

    /// Appends `YYYY-MM-DD HH:MM:SS.uuuuuu` (UTC).
    mutating func append(_ ns: UInt64, to out: inout String) {
        let s = ns / 1_000_000_000
        if s != second {
            second = s
            let full = Timestamp.nbdkit(ns)
            prefix = String(full.dropLast(6))
        }
        out += prefix
        let micros = (ns % 1_000_000_000) / 1000
        var digits: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &digits) { raw in
            var x = micros
            for i in (0..<6).reversed() {
                raw[i] = UInt8(ascii: "0") + UInt8(x % 10)
                x /= 10
            }
        }
        withUnsafeBytes(of: &digits) { raw in
            out += String(decoding: UnsafeRawBufferPointer(rebasing: raw[0..<6]), as: UTF8.self)
        }
    }
}

extension ConnectionLog {
    /// The request line: `<time> connection=N Zero id=5 offset=0x.. count=0x.. trim=1 fua=0 fast=1 ...`.
    mutating func appendRequestLine(_ r: RequestEvent, time: UInt64, to out: inout String) {
        let h = r.header
        stamp.append(time, to: &out)
        out += tag
        out += nbdkitAction(h.command)
        out += " id="
        FastText.appendDecimal(r.id, to: &out)
        switch h.command {
        case .read, .write, .trim, .cache, .writeZeroes, .blockStatus:
            out += " offset="
            FastText.appendHex(h.offset, to: &out)
            out += " count="
            FastText.appendHex(h.length, to: &out)
            let fua = h.flags.contains(.fua) ? " fua=1" : " fua=0"
            switch h.command {
            case .write, .trim: out += fua
            case .writeZeroes:
                out += h.flags.contains(.noHole) ? " trim=0" : " trim=1"
                out += fua
                out += h.flags.contains(.fastZero) ? " fast=1" : " fast=0"
            case .blockStatus: out += h.flags.contains(.reqOne) ? " req_one=1" : " req_one=0"
            case .read, .cache, .flush, .disc, .resize, .unknown: break
            }
        case .flush, .disc, .resize, .unknown:
            let params = nbdkitParams(h)
            if !params.isEmpty {
                out += " "
                out += params
            }
        }
        out += " ...\n"
    }

    /// The reply line: `<time> connection=N ...Zero id=5 return=-1 error=ENOTSUP`.
    mutating func appendReplyLine(_ c: CompletedRequest, time: UInt64, to out: inout String) {
        stamp.append(time, to: &out)
        out += tag
        out += "..."
        out += nbdkitAction(c.request.command)
        out += " id="
        FastText.appendDecimal(c.id, to: &out)
        if case .blockStatus = c.request.command, c.outcome == .replied, c.error == .ok {
            out += extentsText(c)
        }
        switch c.outcome {
        case .replied:
            if c.error == .ok {
                out += " return=0\n"
            } else {
                out += " return=-1 error="
                out += c.error.name
                out += "\n"
            }
        case .abandoned:
            out += " return=-1 error=ENOTCONN\n"
        case .noReply:
            out += "\n"
        }
    }
}
