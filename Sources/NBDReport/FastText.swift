import NBDConversation
import NBDProtocol

/// Appending numbers and timestamps to log bytes without temporary Strings: the proxy
/// writes two lines per request with logging on, and formatting through interpolation
/// cost more than the relay itself on small requests. Lines are built straight into the
/// byte buffer the sink writes (a profile at 60,000 requests/s put String appends and
/// UTF-8 validation at 6% of the proxy's CPU before).
enum FastText {
    /// Appends `0x` and the hex digits of `v` (lower case, no padding), as nbdkit prints.
    @inline(__always)
    static func appendHex(_ v: UInt64, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "0"))
        out.append(UInt8(ascii: "x"))
        var shift = v == 0 ? 0 : ((64 - v.leadingZeroBitCount + 3) / 4 - 1) * 4
        while shift >= 0 {
            let d = UInt8(truncatingIfNeeded: (v >> UInt64(shift)) & 0xf)
            out.append(d < 10 ? UInt8(ascii: "0") + d : UInt8(ascii: "a") - 10 + d)
            shift -= 4
        }
    }

    /// Appends the decimal digits of `v`.
    @inline(__always)
    static func appendDecimal(_ v: UInt64, to out: inout [UInt8]) {
        var count = 1
        var x = v / 10
        while x > 0 {
            count += 1
            x /= 10
        }
        appendDigits(v, count: count, to: &out)
    }

    /// Appends the last `count` decimal digits of `v`, zero-padded.
    @inline(__always)
    static func appendDigits(_ v: UInt64, count: Int, to out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: count))
        var x = v
        var i = start + count - 1
        while i >= start {
            out[i] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: x % 10)
            x /= 10
            i -= 1
        }
    }
}

/// The `YYYY-MM-DD HH:MM:SS.` part of nbdkit timestamps changes once a second: keep it.
struct TimestampCache {
    var second: UInt64 = .max
    var prefix: [UInt8] = []

    /// Appends `YYYY-MM-DD HH:MM:SS.uuuuuu` (UTC).
    mutating func append(_ ns: UInt64, to out: inout [UInt8]) {
        let s = ns / 1_000_000_000
        if s != second {
            second = s
            prefix = Array(Timestamp.nbdkit(ns).utf8.dropLast(6))
        }
        out.append(contentsOf: prefix)
        FastText.appendDigits((ns % 1_000_000_000) / 1000, count: 6, to: &out)
    }
}

extension ConnectionLog {
    /// The request line: `<time> connection=N Zero id=5 offset=0x.. count=0x.. trim=1 fua=0 fast=1 ...`.
    mutating func appendRequestLine(_ r: RequestEvent, time: UInt64, to out: inout [UInt8]) {
        let h = r.header
        stamp.append(time, to: &out)
        out.append(contentsOf: tag)
        out += nbdkitAction(h.command)
        out += " id="
        FastText.appendDecimal(r.id, to: &out)
        switch h.command {
        case .read, .write, .trim, .cache, .writeZeroes, .blockStatus:
            out += " offset="
            FastText.appendHex(h.offset, to: &out)
            out += " count="
            FastText.appendHex(r.effectLength, to: &out)
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
    mutating func appendReplyLine(_ c: CompletedRequest, time: UInt64, to out: inout [UInt8]) {
        stamp.append(time, to: &out)
        out.append(contentsOf: tag)
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
