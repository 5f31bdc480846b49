#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, from the real sessions in Captures/ (and a few
hand-made URIs and payloads): Fuzz/Corpus/TARGET/. Deterministic; run again after
adding captures. Inputs are kept under 64 KiB (the targets' -max_len)."""
import glob, hashlib, os, struct

ROOT = os.path.dirname(os.path.abspath(__file__))
CAPTURES = os.path.join(os.path.dirname(ROOT), "Captures")
MAX = 65536


def put(target, data):
    d = os.path.join(ROOT, "Corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data[:MAX])


def transcript_records(path):
    b = open(path, "rb").read()
    assert b[:5] == b"NBDT\x01", path
    i = 5
    while i + 13 <= len(b):
        d = b[i:i + 1]
        length = struct.unpack(">I", b[i + 9:i + 13])[0]
        yield d == b"S", b[i + 13:i + 13 + length]
        i += 13 + length


def chunked(path, flags, piece):
    """The Chunker layout: a flags byte, then (direction|length-1, bytes) records."""
    out = bytearray([flags])
    for to_client, data in transcript_records(path):
        for j in range(0, len(data), piece):
            part = data[j:j + piece]
            out.append((0x80 if to_client else 0) | (len(part) - 1))
            out += part
            if len(out) >= MAX:
                return bytes(out[:MAX])
    return bytes(out)


for nbdt in sorted(glob.glob(os.path.join(CAPTURES, "*", "*.nbdt"))):
    for flags, piece in ((0, 128), (2, 37), (1, 128)):
        seed = chunked(nbdt, flags, piece)
        put("FuzzConversation", seed)
        put("FuzzPolicy", seed)
        put("FuzzRelay", seed)
        put("FuzzReplay", seed)
    put("FuzzTranscript", open(nbdt, "rb").read()[:MAX])
def as_pcapng(classic):
    """A little-endian microsecond pcap as pcapng: a section, one interface (if_tsresol 6),
    an enhanced packet block per record (nbdtap reads pcapng in place as well as by libpcap)."""
    def block(kind, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    snaplen, linktype = struct.unpack("<II", classic[16:24])
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", linktype, 0, snaplen) + struct.pack("<HHB3xHH", 9, 1, 6, 0, 0))
    i = 24
    while i + 16 <= len(classic) and len(out) < MAX:
        sec, usec, incl, orig = struct.unpack("<IIII", classic[i:i + 16])
        t = sec * 1000000 + usec
        out += block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, incl, orig) + classic[i + 16:i + 16 + incl])
        i += 16 + incl
    return out


for pcap in sorted(glob.glob(os.path.join(CAPTURES, "*", "*.pcap"))):
    put("FuzzPcap", open(pcap, "rb").read()[:MAX])
    put("FuzzPcap", as_pcapng(open(pcap, "rb").read())[:MAX])
for uri in ["nbd://127.0.0.1:10809/export", "nbd+unix:///disk?socket=/tmp/s.sock", "nbds://[::1]:0/",
            "nbd://localhost", "nbds+unix://alice@/?socket=/run/x&tls-psk-file=/k", "nbd+vsock:///", "nbd://h:99999/"]:
    put("FuzzURI", uri.encode())
# Payload seeds: selector byte, then a payload of each kind.
put("FuzzPayloads", bytes([6]) + struct.pack(">I", 0) + struct.pack(">HH", 1, 3))                     # INFO request
put("FuzzPayloads", bytes([9]) + struct.pack(">II", 0, 1) + struct.pack(">I", 15) + b"base:allocation")  # meta context
put("FuzzPayloads", bytes([0x23]) + struct.pack(">HQH", 0, 1 << 20, 0x1ced))                            # INFO export
put("FuzzPayloads", bytes([3]) + struct.pack(">II", 0, 1) + struct.pack(">II", 65536, 3))              # block status
put("FuzzPayloads", bytes([4]) + struct.pack(">IIQQ", 0, 1, 1 << 33, 0))                               # block status ext
put("FuzzPayloads", bytes([5]) + struct.pack(">IH", 95, 4) + b"slow")                                   # error chunk
print("seeds:", {t: len(os.listdir(os.path.join(ROOT, "Corpus", t))) for t in sorted(os.listdir(os.path.join(ROOT, "Corpus")))})
