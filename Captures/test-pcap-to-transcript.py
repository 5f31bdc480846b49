#!/usr/bin/env python3
"""Stress test for scripts/pcap-to-transcript.py on mangled copies of a real capture.

Usage: test-pcap-to-transcript.py SESSION.pcap PORT

From the capture it derives variants: frames reordered (out-of-order segments),
segments duplicated (retransmissions), segments split into overlapping pieces,
link types DLT_NULL / LINUX_SLL / LINUX_SLL2 / raw IPv4, IPv4 rewritten as IPv6,
nanosecond and big-endian pcap headers.  Each variant's transcript streams must
equal those of the unmodified capture.  Standard library only.
"""
import os
import random
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
P2T = os.path.join(HERE, "..", "scripts", "pcap-to-transcript.py")


def read_frames(path):
    d = open(path, "rb").read()
    assert d[:4] == b"\xd4\xc3\xb2\xa1" and struct.unpack_from("<I", d, 20)[0] == 1, \
        "test expects a little-endian microsecond Ethernet pcap (tcpdump on lo)"
    pos, out = 24, []
    while pos < len(d):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", d, pos)
        out.append((sec, usec, d[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    return out


def write_pcap(path, frames, linktype=1, endian="<", nano=False):
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    with open(path, "wb") as f:
        f.write(struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
        for sec, usec, data in frames:
            frac = usec * 1000 if nano else usec
            f.write(struct.pack(endian + "IIII", sec, frac, len(data), len(data)))
            f.write(data)


def streams(path, port):
    with tempfile.TemporaryDirectory() as td:
        out = os.path.join(td, "t.nbdt")
        r = subprocess.run([sys.executable, P2T, "--port", str(port), "--summary", "-o", out, path],
                           capture_output=True, text=True)
        if r.returncode not in (0,):
            raise AssertionError("pcap-to-transcript failed: %s" % r.stderr)
        files = sorted(f for f in os.listdir(td) if f.endswith(".nbdt"))
        res = []
        for fn in files:
            d = open(os.path.join(td, fn), "rb").read()
            assert d[:5] == b"NBDT\x01"
            pos, c, s, last = 5, [], [], {}
            while pos < len(d):
                dr = d[pos:pos + 1]
                ts, ln = struct.unpack_from(">QI", d, pos + 1)
                assert ln > 0
                pos += 13
                (c if dr == b"C" else s).append(d[pos:pos + ln])
                pos += ln
            res.append((b"".join(c), b"".join(s)))
        return res, r.stdout.strip()


def eth_payload(frame):
    return frame[12:14], frame[14:]


def to_ipv6(ip4):
    ihl = (ip4[0] & 15) * 4
    total = struct.unpack_from(">H", ip4, 2)[0]
    src, dst = ip4[12:16], ip4[16:20]
    payload = ip4[ihl:total]
    s6 = b"\0" * 10 + b"\xff\xff" + src if src != b"\x7f\0\0\x01" else b"\0" * 15 + b"\x01"
    d6 = b"\0" * 10 + b"\xff\xff" + dst if dst != b"\x7f\0\0\x01" else b"\0" * 15 + b"\x01"
    # TCP checksum is not checked by the tool; keep the segment as is
    hdr = struct.pack(">IHBB", 6 << 28, len(payload), 6, 64) + s6 + d6
    return hdr


def tcp_split(frame):
    """Split a data-carrying Ethernet/IPv4/TCP frame into two overlapping frames."""
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    total = struct.unpack_from(">H", ip, 2)[0]
    tcp = ip[ihl:total]
    doff = (tcp[12] >> 4) * 4
    payload = tcp[doff:]
    if len(payload) < 8:
        return None
    seq = struct.unpack_from(">I", tcp, 4)[0]
    cut1 = len(payload) * 2 // 3          # first piece: [0, cut1)
    cut2 = len(payload) // 3              # second piece: [cut2, end) overlaps
    out = []
    for start, end in ((0, cut1), (cut2, len(payload))):
        t = bytearray(tcp[:doff]) + payload[start:end]
        struct.pack_into(">I", t, 4, (seq + start) & 0xFFFFFFFF)
        newip = bytearray(ip[:ihl]) + t
        struct.pack_into(">H", newip, 2, len(newip))
        out.append(frame[:14] + bytes(newip))
    return out


def has_payload(frame):
    ip = frame[14:]
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return False
    ihl = (ip[0] & 15) * 4
    total = struct.unpack_from(">H", ip, 2)[0]
    tcp = ip[ihl:total]
    return len(tcp) > (tcp[12] >> 4) * 4


def main():
    pcap, port = sys.argv[1], int(sys.argv[2])
    frames = read_frames(pcap)
    ref, ref_summary = streams(pcap, port)
    print("reference:", ref_summary.replace("\n", " | "))
    rng = random.Random(1)
    variants = {}
    # 1. reorder: move data frames after a later data frame of the same direction
    #    (up to 6 frames later), so later bytes are captured before earlier ones
    fr = list(frames)
    data_idx = [i for i, f in enumerate(fr) if has_payload(f[2])]
    key = lambda f: f[2][14 + 12:14 + 24]      # IPv4 src, dst, ports (IHL 20)
    swaps = 0
    for n, a in enumerate(data_idx):
        for b in data_idx[n + 1:]:
            if b - a > 6:
                break
            if key(fr[a]) == key(fr[b]) and rng.random() < 0.5:
                fr[a], fr[b] = fr[b], fr[a]
                swaps += 1
                break
    variants["reordered (%d swaps)" % swaps] = (fr, 1, "<", False)
    # 2. duplicates (retransmissions), some delayed by a few frames
    fr = []
    for i, f in enumerate(frames):
        fr.append(f)
        if has_payload(f[2]) and rng.random() < 0.3:
            fr.append(f)
    fr2 = list(frames)
    for i in range(len(frames) - 1, 0, -1):
        if has_payload(frames[i][2]) and rng.random() < 0.2:
            fr2.insert(min(len(fr2), i + 4), frames[i])
    variants["duplicated"] = (fr, 1, "<", False)
    variants["late retransmissions"] = (fr2, 1, "<", False)
    # 3. overlapping split segments, second piece first sometimes
    fr = []
    for f in frames:
        parts = tcp_split(f[2]) if has_payload(f[2]) and rng.random() < 0.5 else None
        if parts:
            if rng.random() < 0.5:
                parts.reverse()
            fr.extend((f[0], f[1], p) for p in parts)
        else:
            fr.append(f)
    variants["overlapping splits"] = (fr, 1, "<", False)
    # 4. link types and header variants
    variants["DLT_NULL"] = ([(s, u, struct.pack("<I", 2) + d[14:]) for s, u, d in frames], 0, "<", False)
    variants["LINUX_SLL"] = ([(s, u, struct.pack(">HHH8sH", 0, 772, 6, b"\0" * 8, 0x0800) + d[14:])
                              for s, u, d in frames], 113, "<", False)
    variants["LINUX_SLL2"] = ([(s, u, struct.pack(">HHIHBB8s", 0x0800, 0, 1, 772, 0, 6, b"\0" * 8) + d[14:])
                               for s, u, d in frames], 276, "<", False)
    variants["raw IPv4 (101)"] = ([(s, u, d[14:]) for s, u, d in frames], 101, "<", False)
    v6 = []
    for s, u, d in frames:
        ip = d[14:]
        ihl = (ip[0] & 15) * 4
        total = struct.unpack_from(">H", ip, 2)[0]
        v6.append((s, u, d[:12] + b"\x86\xdd" + to_ipv6(ip) + ip[ihl:total]))
    variants["IPv6 over Ethernet"] = (v6, 1, "<", False)
    variants["nanosecond big-endian"] = (frames, 1, ">", True)
    ok = True
    with tempfile.TemporaryDirectory() as td:
        for name, (fr, lt, en, nano) in variants.items():
            p = os.path.join(td, "v.pcap")
            write_pcap(p, fr, lt, en, nano)
            try:
                got, summary = streams(p, port)
                good = got == ref
            except AssertionError as e:
                good, summary = False, str(e)
            ok &= good
            print("%-28s %s  %s" % (name, "OK  " if good else "FAIL", summary.split("\n")[0].split(": ", 1)[-1]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
