#!/usr/bin/python3
"""An extended-header client that sends what qemu 10 never does once the server shows a
maximum payload: a 1 MiB WRITE (PAYLOAD_LEN set) and a 1 MiB READ past a 256 KiB
maximum, then a BLOCK_STATUS, so nbdtap's --max-payload and --no-extents take their
extended paths. qemu 10's client honours NBD_INFO_BLOCK_SIZE and libnbd 1.14 has no
extended headers, so this writes the requests byte by byte as the extension text has them.

usage: ext_split_client.py SOCKET_PATH
Prints one line per answer; exits non-zero on anything unexpected."""
import os, socket, struct, sys

NBDMAGIC, IHAVEOPT, REPLY_MAGIC = 0x4E42444D41474943, 0x49484156454F5054, 0x3E889045565A9
EXT_REQUEST, EXT_REPLY = 0x21E41C71, 0x6E8A278C
OPT_GO, OPT_SET_META, OPT_EXT = 7, 10, 11
MIB = 1 << 20


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            sys.exit(f"EOF after {len(out)} of {n} bytes")
        out += chunk
    return out


def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)
    replies = []
    while True:
        magic, o, rtype, length = struct.unpack(">QIII", recv_exact(s, 20))
        assert magic == REPLY_MAGIC and o == opt, (hex(magic), o)
        replies.append((rtype, recv_exact(s, length)))
        if rtype == 1 or rtype & 0x80000000:
            return replies


def chunk(s):
    magic, flags, rtype, cookie, offset, length = struct.unpack(">IHHQQQ", recv_exact(s, 32))
    assert magic == EXT_REPLY, hex(magic)
    return flags, rtype, cookie, offset, recv_exact(s, length)


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
    s.sendall(struct.pack(">IHHQQQ", EXT_REQUEST, 0x20, 1, 1, 0, MIB) + data)  # WRITE, PAYLOAD_LEN
    flags, rtype, cookie, _, payload = chunk(s)
    assert cookie == 1 and flags & 1, (cookie, flags)
    print("write", "error" if rtype & 0x8000 else "ok", rtype)
    s.sendall(struct.pack(">IHHQQQ", EXT_REQUEST, 0, 0, 2, 0, MIB))  # READ
    got = bytearray(MIB)
    chunks = 0
    while True:
        flags, rtype, cookie, offset, payload = chunk(s)
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
    s.sendall(struct.pack(">IHHQQQ", EXT_REQUEST, 0, 7, 3, 0, 4 * MIB))  # BLOCK_STATUS
    flags, rtype, cookie, _, payload = chunk(s)
    assert cookie == 3 and flags & 1 and rtype == 6, (cookie, flags, rtype)  # BLOCK_STATUS_EXT
    cid, count = struct.unpack(">II", payload[:8])
    extents = [struct.unpack(">QQ", payload[8 + 16 * i:24 + 16 * i]) for i in range(count)]
    print("block_status", cid == context_id, extents)
    s.sendall(struct.pack(">IHHQQQ", EXT_REQUEST, 0, 2, 4, 0, 0))  # DISC
    print("done")


main()
