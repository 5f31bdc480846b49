#!/usr/bin/env python3
"""Choose the frames of original.pcap that record.sh deletes to make session.pcap.

Usage: pick-frames.py original.pcap PORT nbdkit.log FRAMES-OUT > removed-frames.md

Parses the NBD streams of the single connection (tshark does the TCP part:
frame number, relative sequence number, payload), finds the frames that carry
the chosen parts of chosen requests (TARGETS below; cookie = libnbd's request
number = nbdkit log filter id, checked against nbdkit.log), writes their
numbers to FRAMES-OUT (one line, for editcap) and prints a markdown
description of exactly what each removed frame carried.  It only *chooses*
frames; the ground truth stays nbdkit.log.
"""
import re
import struct
import subprocess
import sys

# (request id, expected command, which part): the frames to delete
TARGETS = [
    (9, "WRITE", "payload-middle"),   # a frame inside a 64 KiB WRITE payload (payload on both sides)
    (14, "READ", "request-header"),   # the frame carrying a READ request (28-byte header)
    (22, "READ", "reply-header"),     # the frame carrying a READ's simple reply header (+ first data)
    (28, "WRITE", "reply-header"),    # the frame carrying a WRITE's simple reply (16 bytes)
    (34, "WRITE", "request-header"),  # the frame carrying a 64 KiB WRITE's header (+ first payload)
]
CMDS = {0: "READ", 1: "WRITE", 2: "DISC", 3: "FLUSH", 4: "TRIM", 5: "CACHE", 6: "WRITE_ZEROES", 7: "BLOCK_STATUS"}
OPTS = {1: "EXPORT_NAME", 3: "ABORT", 5: "STARTTLS", 6: "INFO", 7: "GO", 8: "STRUCTURED_REPLY",
        10: "SET_META_CONTEXT"}


def frames(pcap, port):
    out = subprocess.run(["tshark", "-r", pcap, "-T", "fields", "-E", "separator=/t",
                          "-e", "frame.number", "-e", "tcp.srcport", "-e", "tcp.seq", "-e", "tcp.len",
                          "-e", "tcp.payload", "-e", "_ws.col.Info"],
                         capture_output=True, text=True, check=True).stdout
    res = {"C": [], "S": []}
    info = {}
    segs = {"C": [], "S": []}
    for line in out.splitlines():
        num, sport, seq, ln, payload, col = (line.split("\t") + [""] * 6)[:6]
        num, ln = int(num), int(ln or 0)
        info[num] = col
        if not ln:
            continue
        d = "S" if int(sport) == port else "C"
        start = int(seq) - 1                          # tshark's relative sequence numbers
        res[d].append((num, start, start + ln))
        segs[d].append((start, bytes.fromhex(payload.replace(":", ""))))
    data = {}
    for d in ("C", "S"):                              # reassemble (the capture may hold real
        end = max(a + len(p) for a, p in segs[d])     # reordering and retransmissions)
        buf, have = bytearray(end), bytearray(end)
        for a, p in segs[d]:
            buf[a:a + len(p)] = p
            have[a:a + len(p)] = b"\x01" * len(p)
        assert all(have), "bytes missing from the original capture (direction %s)" % d
        data[d] = bytes(buf)
    return res, data, info


def parse(c, s):
    """Return (handshake parts, requests) with stream offsets."""
    parts = {"C": [], "S": []}       # (start, end, description, id or None)
    assert s[:16] == b"NBDMAGICIHAVEOPT"
    parts["S"].append((0, 18, "server greeting", None))
    parts["C"].append((0, 4, "client flags", None))
    ci, si = 4, 18
    while True:                                            # options and their replies
        _m, opt, ln = struct.unpack_from(">QII", c, ci)
        parts["C"].append((ci, ci + 16 + ln, "option NBD_OPT_%s" % OPTS.get(opt, opt), None))
        ci += 16 + ln
        while True:
            _m, ropt, rtype, rln = struct.unpack_from(">QIII", s, si)
            parts["S"].append((si, si + 20 + rln, "reply to NBD_OPT_%s, type 0x%x" % (OPTS.get(ropt, ropt), rtype), None))
            si += 20 + rln
            if rtype == 1 or rtype & 0x80000000:
                break
        if opt == 7:
            break
    reqs = {}
    order = []
    while ci < len(c):
        magic, flags, typ, cookie, off, ln = struct.unpack_from(">IHHQQI", c, ci)
        assert magic == 0x25609513, "bad request magic at C offset %d" % ci
        cmd = CMDS.get(typ, str(typ))
        r = {"id": cookie, "cmd": cmd, "offset": off, "len": ln, "flags": flags, "hdr": (ci, ci + 28)}
        ci += 28
        if cmd == "WRITE":
            r["payload"] = (ci, ci + ln)
            ci += ln
        reqs[cookie] = r
        order.append(cookie)
    while si < len(s):
        magic, err, cookie = struct.unpack_from(">IIQ", s, si)
        assert magic == 0x67446698, "bad reply magic at S offset %d" % si
        r = reqs[cookie]
        r["reply"] = (si, si + 16)
        r["error"] = err
        si += 16
        if r["cmd"] == "READ" and err == 0:
            r["data"] = (si, si + r["len"])
            si += r["len"]
    return parts, reqs, order


def frame_at(flist, off):
    """The one frame carrying stream offset off, or None if several do (retransmission)."""
    hits = [(num, a, b) for num, a, b in flist if a <= off < b]
    if len(hits) != 1:
        return None
    num, a, b = hits[0]
    # its bytes must not be in any other frame either, or deleting it would lose nothing
    if any(n != num and x < b and a < y for n, x, y in flist):
        return None
    return hits[0]


def describe(d, a, b, parts, reqs):
    """What stream bytes [a, b) of direction d contain, exactly."""
    out = []
    for (x, y, what, _i) in parts[d]:
        if x < b and a < y:
            out.append("%s (%d of its %d bytes)" % (what, min(b, y) - max(a, x), y - x))
    for r in reqs.values():
        label = "%s id %d (%d bytes at 0x%x)" % (r["cmd"], r["id"], r["len"], r["offset"])
        keys = (("hdr", "request header"), ("payload", "WRITE payload")) if d == "C" else \
               (("reply", "simple reply header"), ("data", "READ data"))
        for k, name in keys:
            if k in r:
                x, y = r[k]
                if x < b and a < y:
                    if max(a, x) == x and min(b, y) == y:
                        part = "all %d bytes" % (y - x)
                    else:
                        part = "bytes %d–%d of %d" % (max(a, x) - x, min(b, y) - x, y - x)
                    out.append("%s of %s: %s" % (name, label, part))
    return "; ".join(out)


def log_lines(path):
    res = {}
    for line in open(path):
        m = re.match(r"\S+ \S+ connection=\d+ (\w+) id=(\d+)(.*)$", line.rstrip())
        if m:
            res[int(m.group(2))] = "%s id=%s%s" % (m.group(1), m.group(2), m.group(3).replace(" ...", ""))
    return res


def main():
    pcap, port, log, fout = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    flist, data, info = frames(pcap, port)
    parts, reqs, order = parse(bytes(data["C"]), bytes(data["S"]))
    logs = log_lines(log)
    # the wire cookies are the log filter ids: check offset/count of every request
    names = {"READ": "Read", "WRITE": "Write", "FLUSH": "Flush"}
    mism = [i for i in order if reqs[i]["cmd"] != "DISC" and not (
        i in logs and logs[i].startswith(names.get(reqs[i]["cmd"], "?"))
        and (reqs[i]["cmd"] == "FLUSH" or "offset=0x%x count=0x%x" % (reqs[i]["offset"], reqs[i]["len"]) in logs[i]))]
    assert not mism, "cookie/log id mismatch: %s" % mism
    chosen = []
    for rid, cmd, what in TARGETS:
        r = reqs[rid]
        assert r["cmd"] == cmd, (rid, r["cmd"], cmd)
        if what == "payload-middle":
            # the frame holding the payload's middle byte, else the nearest one that is the only
            # carrier of its bytes and lies strictly inside the payload
            d, (p0, p1) = "C", r["payload"]
            mid = (p0 + p1) // 2
            cands = sorted((f for f in flist[d] if p0 < f[1] and f[2] < p1), key=lambda f: max(f[1] - mid, mid - f[2] + 1, 0))
            hit = next((frame_at(flist[d], f[1]) for f in cands if frame_at(flist[d], f[1])), None)
        elif what == "request-header":
            d = "C"
            hit = frame_at(flist[d], r["hdr"][0])
        else:
            d = "S"
            hit = frame_at(flist[d], r["reply"][0])
        assert hit, "no frame that alone carries the %s of id %d" % (what, rid)
        num, a, b = hit
        chosen.append((num, d, a, b, rid, what))
    chosen.sort()
    open(fout, "w").write(" ".join(str(c[0]) for c in chosen) + "\n")
    print("Frames deleted from `original.pcap` to make `session.pcap` (`editcap -F pcap original.pcap session.pcap %s`):"
          % " ".join(str(c[0]) for c in chosen))
    print()
    print("| Frame | Dir | Stream bytes | Length | Chosen as | What the frame carried (exact) | tshark Info of the frame |")
    print("|---|---|---|---|---|---|---|")
    for num, d, a, b, rid, what in chosen:
        print("| %d | %s | %d–%d | %d | %s of id %d | %s | `%s` |" % (
            num, d, a, b, b - a, what, rid, describe(d, a, b, parts, reqs), info[num]))
    print()
    print("Requests hit, with their ground-truth log lines (`nbdkit.log`; the wire cookie equals the log id for "
          "all %d requests with a log line, checked by command, offset and count):"
          % sum(1 for i in order if reqs[i]["cmd"] != "DISC"))
    print()
    for num, d, a, b, rid, what in chosen:
        print("- id %d (frame %d, %s): `%s`" % (rid, num, what, logs.get(rid, "?")))
    print()
    print("Stream offsets are from the start of each direction (C = client→server, S = server→client), as in "
          "`session.nbdt`; `session.nbdt` is the transcript of `original.pcap`, so the removed bytes are the "
          "ranges above.")


if __name__ == "__main__":
    main()
