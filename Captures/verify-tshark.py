#!/usr/bin/env python3
"""Check session transcripts against tshark's own TCP reassembly.

Usage: verify-tshark.py CAPTURE.pcap PORT TRANSCRIPT [TRANSCRIPT ...]

Transcripts are given in connection order (1, 2, ...).  For each, runs
`tshark -r CAPTURE -q -z follow,tcp,raw,<stream>` on the matching TCP stream
(the streams with PORT on one side, in tshark's stream order) and checks the
concatenated client and server bytes are identical to the transcript's C and
S records.  Exit 0 if all match.
"""
import struct
import subprocess
import sys


def read_transcript(path):
    data = open(path, "rb").read()
    assert data[:5] == b"NBDT\x01", "bad header"
    pos, c, s, n = 5, [], [], 0
    while pos < len(data):
        d = data[pos:pos + 1]
        _ts, ln = struct.unpack_from(">QI", data, pos + 1)
        pos += 13
        (c if d == b"C" else s).append(data[pos:pos + ln])
        assert d in (b"C", b"S")
        pos += ln
        n += 1
    assert pos == len(data)
    return b"".join(c), b"".join(s), n


def streams_for_port(pcap, port):
    out = subprocess.run(["tshark", "-r", pcap, "-T", "fields", "-e", "tcp.stream",
                          "-Y", "tcp.port==%d" % port], capture_output=True, text=True,
                         check=True).stdout.split()
    seen = []
    for x in out:
        if int(x) not in seen:
            seen.append(int(x))
    return seen


def follow(pcap, stream):
    out = subprocess.run(["tshark", "-r", pcap, "-q", "-z", "follow,tcp,raw,%d" % stream],
                         capture_output=True, text=True, check=True).stdout
    n0, n1 = [], []
    body = False
    for line in out.splitlines():
        if line.startswith("Node 1:"):
            body = True
            continue
        if not body or line.startswith("====="):
            continue
        if line.startswith("\t"):
            n1.append(bytes.fromhex(line.strip()))
        elif line.strip():
            n0.append(bytes.fromhex(line.strip()))
    return b"".join(n0), b"".join(n1)


def main():
    pcap, port, transcripts = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    streams = streams_for_port(pcap, port)
    ok = True
    if len(streams) != len(transcripts):
        print("MISMATCH: tshark sees %d streams on port %d, %d transcripts given"
              % (len(streams), port, len(transcripts)))
        ok = False
    for st, tr in zip(streams, transcripts):
        c, s, n = read_transcript(tr)
        t0, t1 = follow(pcap, st)
        # tshark's node 0 is the side that sent the first packet (the client here)
        good = (c, s) == (t0, t1)
        ok &= good
        print("%s: tshark stream %d: C %d/%d bytes, S %d/%d bytes, %d records: %s"
              % (tr, st, len(c), len(t0), len(s), len(t1), n, "identical" if good else "DIFFERENT"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
