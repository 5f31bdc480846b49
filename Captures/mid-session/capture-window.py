#!/usr/bin/env python3
"""Which requests of nbdkit.log fall inside the capture window.

Usage: capture-window.py nbdkit.log session.pcap

Compares the log filter's timestamps (local time, as nbdkit writes them) with
the capture time of the pcap's first and last frame.  Reads only the frame
timestamps from the pcap (never the NBD bytes).  A request is "inside" if its
log ENTER line is after the first frame and its LEAVE line before the last.
"""
import datetime
import re
import struct
import sys


def frame_times(path):
    with open(path, "rb") as f:
        hdr = f.read(24)
        endian, scale = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
                         b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}[hdr[:4]]
        times = []
        while True:
            rh = f.read(16)
            if len(rh) < 16:
                break
            sec, frac, incl, _orig = struct.unpack(endian + "IIII", rh)
            f.seek(incl, 1)
            times.append(sec + frac * scale)
    return times


def main():
    log, pcap = sys.argv[1], sys.argv[2]
    times = frame_times(pcap)
    first, last = times[0], times[-1]
    fmt = lambda t: datetime.datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")
    print("Capture: %d frames, first frame %s, last frame %s (local time, as in nbdkit.log)."
          % (len(times), fmt(first), fmt(last)))
    print()
    print("| id | request (log filter) | ENTER − first frame | LEAVE − first frame | in capture |")
    print("|---|---|---|---|---|")
    reqs = {}
    order = []
    for line in open(log):
        m = re.match(r"(\S+ \S+) connection=(\d+) (\.\.\.)?(\w+) id=(\d+)(.*)$", line.rstrip("\n"))
        if not m:
            continue
        ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        key = (m.group(2), int(m.group(5)))
        if not m.group(3):
            reqs[key] = [m.group(4) + m.group(6).replace(" ...", ""), ts, None]
            order.append(key)
        elif key in reqs:
            reqs[key][2] = ts
    inside = []
    for key in order:
        what, t_in, t_out = reqs[key]
        ok = t_in > first and (t_out or t_in) < last
        if ok:
            inside.append(key[1])
        print("| %d | `%s` | %+.6f s | %s | %s |" % (key[1], what.strip(), t_in - first,
              "%+.6f s" % (t_out - first) if t_out else "-", "yes" if ok else "**no**"))
    print()
    print("Inside the capture window: ids %s (%d of %d requests)."
          % (compress(inside), len(inside), len(order)))


def compress(ids):
    out, i = [], 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else "%d–%d" % (ids[i], ids[j]))
        i = j + 1
    return ", ".join(out) if out else "none"


if __name__ == "__main__":
    main()
