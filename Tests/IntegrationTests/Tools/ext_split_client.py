#!/usr/bin/python3
"""An extended-header client that sends what qemu 10 never does once the server shows a
maximum payload: a 1 MiB WRITE (PAYLOAD_LEN set) and a 1 MiB READ past a 256 KiB
maximum, then a BLOCK_STATUS, so nbdtap's --max-payload and --no-extents take their
extended paths. qemu 10's client honours NBD_INFO_BLOCK_SIZE and libnbd 1.14 has no
extended headers, so this writes the requests byte by byte as the extension text has them.

usage: ext_split_client.py SOCKET_PATH
Prints one line per answer; exits non-zero on anything unexpected."""
import os, socket, struct, sys

sys.path.insert(0, os.path.dirname(__file__))
from ext_wire import *  # noqa: F401,F403  (the wire helpers both clients share)
MIB = 1 << 20


def main():
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.settimeout(60)
    magic, ihaveopt, _ = struct.unpack(">QQH", recv_exact(s, 18))
    assert magic == NBDMAGIC and ihaveopt == IHAVEOPT
    s.sendall(struct.pack(">I", 3))
    assert option(s, OPT_EXT)[-1][0] == 1, "no extended headers"
    query = b"base:allocation"
    meta = option(s, OPT_SET_META, struct.pack(">I", 0) + struct.pack(">II", 1, len(query)) + query)
    context_id = struct.unpack(">I", meta[0][1][:4])[0]
    go = option(s, OPT_GO, struct.pack(">IHH", 0, 1, 3))  # ask for NBD_INFO_BLOCK_SIZE
    for t, d in go:
        if t == 3 and struct.unpack(">H", d[:2])[0] == 3:
            print("block_size", *struct.unpack(">III", d[2:14]))
    data = os.urandom(MIB)
    request(s, "WRITE", 1, 0, MIB, FLAG_PAYLOAD_LEN, data)
    flags, rtype, cookie, _, payload = reply(s)
    assert cookie == 1 and flags & 1, (cookie, flags)
    print("write", "error" if rtype & 0x8000 else "ok", rtype)
    request(s, "READ", 2, 0, MIB)
    got = bytearray(MIB)
    chunks = 0
    while True:
        flags, rtype, cookie, offset, payload = reply(s)
        assert cookie == 2, cookie
        chunks += 1
        if rtype == 1:  # OFFSET_DATA
            at = struct.unpack(">Q", payload[:8])[0]
            got[at:at + len(payload) - 8] = payload[8:]
        elif rtype & 0x8000:
            sys.exit(f"read error chunk {payload[:4].hex()}")
        if flags & 1:
            break
    print("read", "same" if bytes(got) == data else "different", "chunks", chunks)
    request(s, "BLOCK_STATUS", 3, 0, 4 * MIB)
    flags, rtype, cookie, _, payload = reply(s)
    assert cookie == 3 and flags & 1 and rtype == 6, (cookie, flags, rtype)  # BLOCK_STATUS_EXT
    cid, count = struct.unpack(">II", payload[:8])
    extents = [struct.unpack(">QQ", payload[8 + 16 * i:24 + 16 * i]) for i in range(count)]
    print("block_status", cid == context_id, extents)
    request(s, "DISC", 4, 0, 0)
    print("done")


main()
