#!/usr/bin/env python3
"""Turn the TCP connections of a classic pcap capture into NBD transcript files.

Independent of nbdtap: Python 3 standard library only.

Usage:
    pcap-to-transcript.py --port N [--connection K] [-o OUT] [--summary] CAPTURE.pcap

Picks the TCP connections of which one side uses port N (the server), numbers
them 1, 2, ... in the order their first SYN (or, without a SYN in the
capture, their first frame) appears, reassembles each direction by TCP
sequence number and writes one transcript per connection:

    header  b"NBDT\\x01"
    records direction (1 byte, b"C" client->server or b"S" server->client)
            timestamp (u64 big-endian, microseconds since the epoch: capture
                       time of the frame that made the bytes deliverable)
            length    (u32 big-endian)
            bytes

A record holds the bytes that one frame made deliverable in sequence order:
its own new bytes plus any out-of-order bytes buffered earlier that it
connects.  Records are in frame order, so concatenating all C records yields
exactly the client's byte stream and all S records the server's.  Bytes
already delivered (retransmissions, overlaps) are dropped.  The summary also
counts records whose frame acknowledges bytes of the other direction not yet
in the transcript (a reply recorded ahead of what it answers); these are
reported, not reordered.

Output names: with -o OUT (default: the capture path with .pcap replaced by
.nbdt), one connection selected (or only one present) -> OUT; several ->
OUT.K.nbdt (a trailing .nbdt on OUT is removed first), K = connection number.
--connection K selects the K-th connection (1-based, matching nbdkit's
log filter connection=K when the capture started before the first client).

Link types: DLT_NULL (0), DLT_EN10MB (1, with 802.1Q tags), DLT_RAW (12/14/101),
DLT_LINUX_SLL (113), DLT_LINUX_SLL2 (276), IPv4 (228), IPv6 (229); IPv4 and
IPv6 (extension headers skipped); microsecond and nanosecond pcap, either
byte order.  pcapng is rejected (convert with `editcap -F pcap`).

Exit status: 0 ok, 1 usage/format error, 2 a stream has a hole (bytes missing
from the capture; the transcript stops before the hole), 3 (--require-syn) a
connection's SYN is missing.
"""

import argparse
import os
import struct
import sys

MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),   # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1000),   # big-endian, microseconds
    b"\x4d\x3c\xb2\xa1": ("<", 1),      # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),      # big-endian, nanoseconds
}

TH_FIN, TH_SYN, TH_RST, TH_ACK = 0x01, 0x02, 0x04, 0x10


class FormatError(Exception):
    pass


def read_pcap(path):
    """Yield (frame_number, timestamp_ns, linktype, data) for each frame."""
    with open(path, "rb") as f:
        hdr = f.read(24)
        if len(hdr) < 24:
            raise FormatError("%s: too short for a pcap header" % path)
        if hdr[:4] == b"\x0a\x0d\x0d\x0a":
            raise FormatError("%s: pcapng is not supported; convert with "
                              "'editcap -F pcap IN OUT' or capture with tcpdump -w" % path)
        if hdr[:4] not in MAGICS:
            raise FormatError("%s: not a classic pcap file (magic %s)" % (path, hdr[:4].hex()))
        endian, ns_per_unit = MAGICS[hdr[:4]]
        _vmaj, _vmin, _tz, _sig, _snap, linktype = struct.unpack(endian + "HHiIII", hdr[4:24])
        linktype &= 0x0FFFFFFF  # upper bits may carry FCS info
        rec = struct.Struct(endian + "IIII")
        n = 0
        while True:
            rh = f.read(16)
            if not rh:
                break
            if len(rh) < 16:
                sys.stderr.write("warning: truncated record header at end of capture\n")
                break
            sec, frac, incl, orig = rec.unpack(rh)
            data = f.read(incl)
            if len(data) < incl:
                sys.stderr.write("warning: truncated frame %d at end of capture\n" % (n + 1))
                break
            n += 1
            if incl < orig:
                sys.stderr.write("warning: frame %d truncated by snaplen (%d of %d bytes)\n"
                                 % (n, incl, orig))
            yield n, sec * 1_000_000_000 + frac * ns_per_unit, linktype, data


def link_to_ip(linktype, data):
    """Return (ethertype-ish version, ip_bytes) or None."""
    if linktype == 1:  # Ethernet
        if len(data) < 14:
            return None
        etype = struct.unpack_from(">H", data, 12)[0]
        off = 14
        while etype in (0x8100, 0x88A8, 0x9100) and len(data) >= off + 4:
            etype = struct.unpack_from(">H", data, off + 2)[0]
            off += 4
        return etype, data[off:]
    if linktype == 0:  # BSD loopback: 4-byte address family in host byte order
        if len(data) < 4:
            return None
        fam_le = struct.unpack_from("<I", data, 0)[0]
        fam_be = struct.unpack_from(">I", data, 0)[0]
        fam = fam_le if fam_le < 256 else fam_be
        if fam == 2:
            return 0x0800, data[4:]
        if fam in (10, 24, 28, 30):
            return 0x86DD, data[4:]
        return None
    if linktype == 113:  # Linux cooked v1: protocol at offset 14
        if len(data) < 16:
            return None
        return struct.unpack_from(">H", data, 14)[0], data[16:]
    if linktype == 276:  # Linux cooked v2: protocol at offset 0, 20-byte header
        if len(data) < 20:
            return None
        return struct.unpack_from(">H", data, 0)[0], data[20:]
    if linktype in (12, 14, 101):  # raw IP
        if not data:
            return None
        v = data[0] >> 4
        return (0x0800 if v == 4 else 0x86DD if v == 6 else None), data
    if linktype == 228:
        return 0x0800, data
    if linktype == 229:
        return 0x86DD, data
    raise FormatError("unsupported link type %d" % linktype)


def ip_to_tcp(etype, ip):
    """Return (src_addr_str, dst_addr_str, tcp_bytes) or None."""
    if etype == 0x0800:
        if len(ip) < 20 or ip[0] >> 4 != 4:
            return None
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from(">H", ip, 2)[0]
        frag = struct.unpack_from(">H", ip, 6)[0]
        if ip[9] != 6:
            return None
        if frag & 0x3FFF:
            sys.stderr.write("warning: IPv4 fragment ignored\n")
            return None
        end = total if 0 < total <= len(ip) else len(ip)  # total==0: TSO capture
        src = ".".join(str(b) for b in ip[12:16])
        dst = ".".join(str(b) for b in ip[16:20])
        return src, dst, ip[ihl:end]
    if etype == 0x86DD:
        if len(ip) < 40 or ip[0] >> 4 != 6:
            return None
        plen = struct.unpack_from(">H", ip, 4)[0]
        nxt = ip[6]
        end = 40 + plen if 0 < plen and 40 + plen <= len(ip) else len(ip)
        off = 40
        while nxt in (0, 43, 60, 44, 51):
            if off + 8 > end:
                return None
            if nxt == 44:
                sys.stderr.write("warning: IPv6 fragment ignored\n")
                return None
            n2 = ip[off]
            hlen = (ip[off + 1] + 2) * 4 if nxt == 51 else (ip[off + 1] + 1) * 8
            nxt, off = n2, off + hlen
        if nxt != 6:
            return None
        src = fmt_ip6(ip[8:24])
        dst = fmt_ip6(ip[24:40])
        return src, dst, ip[off:end]
    return None


def fmt_ip6(b):
    words = struct.unpack(">8H", b)
    return "[" + ":".join("%x" % w for w in words) + "]"


class Direction:
    def __init__(self):
        self.isn = None          # initial sequence number (from SYN), or None
        self.segments = []       # (frame, ts_ns, seq32, payload)


class Connection:
    def __init__(self, client, server, order_key):
        self.client = client     # (addr, port)
        self.server = server
        self.order_key = order_key
        self.dirs = {"C": Direction(), "S": Direction()}
        self.syn_isn = None
        self.closed = False      # FIN or RST seen


def collect(path, port):
    """Group TCP segments into connections with `port` on one side."""
    conns = []
    active = {}                  # normalized 4-tuple -> Connection
    for frame, ts, linktype, data in read_pcap(path):
        r = link_to_ip(linktype, data)
        if not r or r[0] not in (0x0800, 0x86DD):
            continue
        t = ip_to_tcp(*r)
        if not t:
            continue
        src, dst, tcp = t
        if len(tcp) < 20:
            continue
        sport, dport, seq, ack, offflags = struct.unpack_from(">HHIIH", tcp, 0)
        doff = (offflags >> 12) * 4
        flags = offflags & 0x3F
        if doff < 20 or doff > len(tcp):
            continue
        payload = tcp[doff:]
        if sport != port and dport != port:
            continue
        a, b = (src, sport), (dst, dport)
        key = (a, b) if a <= b else (b, a)
        conn = active.get(key)
        syn_only = (flags & TH_SYN) and not (flags & TH_ACK)
        if syn_only and conn is not None and conn.syn_isn is not None and conn.syn_isn != seq:
            conn = None          # 4-tuple reused by a new connection
        if conn is None:
            if syn_only:
                client, server = a, b
            elif sport == port and dport != port:
                client, server = b, a
            elif dport == port and sport != port:
                client, server = a, b
            elif flags & TH_SYN:  # SYN+ACK from the server
                client, server = b, a
            else:
                client, server = (a, b) if a <= b else (b, a)
            conn = Connection(client, server, frame)
            conns.append(conn)
            active[key] = conn
        d = "C" if (src, sport) == conn.client else "S"
        direction = conn.dirs[d]
        if flags & TH_SYN:
            if direction.isn is None:
                direction.isn = seq
            if syn_only:
                conn.syn_isn = seq
            seq = (seq + 1) & 0xFFFFFFFF   # data on a SYN starts after it
        if flags & (TH_FIN | TH_RST):
            conn.closed = True
        if payload:
            direction.segments.append((frame, ts, seq, payload,
                                       ack if flags & TH_ACK else None))
    return conns


def unwrap(seq, ref):
    """Map 32-bit seq to the 64-bit integer closest to ref."""
    diff = (seq - ref) & 0xFFFFFFFF
    if diff >= 0x80000000:
        diff -= 0x100000000
    return ref + diff


def reassemble(direction):
    """Return (deliveries, stats) for one direction.

    deliveries: list of (frame, ts_ns, bytes) in frame order.
    stats: dict with ooo (segments that arrived ahead of a hole and were
    buffered), retrans (segments entirely already delivered), overlap (segments
    partly already delivered), hole (bytes missing at the end, 0 if none).
    """
    segs = direction.segments
    stats = {"ooo": 0, "retrans": 0, "overlap": 0, "hole": 0, "segments": len(segs)}
    if direction.isn is not None:
        base = stats["base"] = (direction.isn + 1) & 0xFFFFFFFF
    if not segs:
        return [], stats
    if direction.isn is None:
        # no SYN captured: start at the lowest sequence number seen near the start
        ref = segs[0][2]
        base = min(unwrap(s[2], ref) for s in segs) & 0xFFFFFFFF
    nxt = 0                      # next stream offset to deliver (relative to base)
    pending = {}                 # start offset -> (end, payload), ahead of nxt
    out = []
    stats["base"] = base
    for frame, ts, seq, payload, ack in segs:
        # offset relative to base, unwrapped near the current position
        start = unwrap((seq - base) & 0xFFFFFFFF, nxt)
        end = start + len(payload)
        if end <= nxt:
            stats["retrans"] += 1
            continue
        if start > nxt:
            stats["ooo"] += 1
            old = pending.get(start)
            if old is None or old[0] < end:
                pending[start] = (end, payload)
            continue
        if start < nxt:
            stats["overlap"] += 1
        chunk = [payload[nxt - start:]]
        nxt = end
        # drain buffered segments that now connect
        for s in sorted(pending):
            if s > nxt:
                break
            e, p = pending.pop(s)
            if e > nxt:
                chunk.append(p[nxt - s:])
                nxt = e
        out.append((frame, ts, b"".join(chunk), ack))
    if pending:
        first = min(pending)
        stats["hole"] = first - nxt
        stats["hole_at"] = nxt
    return out, stats


def write_transcript(path, conn):
    deliveries = []
    stats = {}
    for d in ("C", "S"):
        dl, st = reassemble(conn.dirs[d])
        stats[d] = st
        deliveries.extend((frame, d, ts, data, ack) for frame, ts, data, ack in dl)
    deliveries.sort(key=lambda x: x[0])  # one frame belongs to one direction
    nbytes = {"C": 0, "S": 0}
    # Causality check: a frame acknowledging bytes of the other direction that
    # the transcript has not delivered yet means the capture recorded a reply
    # ahead of (part of) what it answers.  Counted, not corrected.
    stats["ack_ahead"] = 0
    with open(path, "wb") as f:
        f.write(b"NBDT\x01")
        for _frame, d, ts, data, ack in deliveries:
            other = "S" if d == "C" else "C"
            base = stats[other].get("base")
            if ack is not None and base is not None:
                acked = unwrap((ack - base) & 0xFFFFFFFF, nbytes[other])
                if acked > nbytes[other] + 1:   # +1: the other side's FIN
                    stats["ack_ahead"] += 1
            f.write(d.encode() + struct.pack(">QI", ts // 1000, len(data)))
            f.write(data)
            nbytes[d] += len(data)
    return nbytes, len(deliveries), stats


def fmt_ep(ep):
    return "%s:%d" % ep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", help="classic pcap file")
    ap.add_argument("--port", type=int, required=True, help="server TCP port")
    ap.add_argument("--connection", type=int, metavar="K",
                    help="only the K-th connection (1-based, by SYN order)")
    ap.add_argument("-o", "--output", metavar="OUT",
                    help="output file (default: capture name with .nbdt)")
    ap.add_argument("--summary", action="store_true",
                    help="print a one-line summary per connection to stdout")
    ap.add_argument("--require-syn", action="store_true",
                    help="fail (exit 3) if a connection's SYN is not in the capture "
                         "(capture started after the connection: its start is lost)")
    args = ap.parse_args(argv)

    try:
        conns = collect(args.capture, args.port)
    except (FormatError, OSError) as e:
        sys.stderr.write("pcap-to-transcript: %s\n" % e)
        return 1
    if not conns:
        sys.stderr.write("pcap-to-transcript: no TCP connection with port %d in %s\n"
                         % (args.port, args.capture))
        return 1
    numbered = list(enumerate(conns, 1))
    if args.connection is not None:
        if not 1 <= args.connection <= len(conns):
            sys.stderr.write("pcap-to-transcript: connection %d out of range (1..%d)\n"
                             % (args.connection, len(conns)))
            return 1
        numbered = [numbered[args.connection - 1]]

    out = args.output
    if out is None:
        root, ext = os.path.splitext(args.capture)
        out = (root if ext in (".pcap", ".cap", ".dmp") else args.capture) + ".nbdt"
    status = 0
    for k, conn in numbered:
        if len(numbered) == 1:
            path = out
        else:
            stem = out[:-5] if out.endswith(".nbdt") else out
            path = "%s.%d.nbdt" % (stem, k)
        nbytes, nrec, stats = write_transcript(path, conn)
        holes = [d for d in ("C", "S") if stats[d]["hole"]]
        for d in holes:
            sys.stderr.write("pcap-to-transcript: connection %d direction %s: %d bytes missing "
                             "at stream offset %d; transcript stops there\n"
                             % (k, d, stats[d]["hole"], stats[d]["hole_at"]))
            status = 2
        if conn.syn_isn is None:
            sys.stderr.write("pcap-to-transcript: connection %d: no SYN in the capture; the "
                             "stream starts at the first captured byte\n" % k)
            if args.require_syn:
                status = status or 3
        if args.summary:
            ooo = stats["C"]["ooo"] + stats["S"]["ooo"]
            rtx = stats["C"]["retrans"] + stats["S"]["retrans"]
            ovl = stats["C"]["overlap"] + stats["S"]["overlap"]
            print("%s: connection %d %s -> %s: C %d bytes, S %d bytes, %d records, "
                  "%d out-of-order segments fixed, %d retransmitted dropped, %d overlaps trimmed%s%s%s"
                  % (path, k, fmt_ep(conn.client), fmt_ep(conn.server), nbytes["C"], nbytes["S"],
                     nrec, ooo, rtx, ovl,
                     (", %d records ahead of bytes they acknowledge" % stats["ack_ahead"]
                      if stats["ack_ahead"] else "") + (", INCOMPLETE" if holes else ""),
                     "" if conn.syn_isn is not None else ", NO SYN",
                     "" if conn.closed else ", NO FIN/RST (capture may have stopped early)"))
    return status


if __name__ == "__main__":
    sys.exit(main())
