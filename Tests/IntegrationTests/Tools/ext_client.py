#!/usr/bin/python3
"""An NBD client for the extended-header paths no installed client takes: qemu 10 sends no
BLOCK_STATUS payload and never asks for structured replies after extended headers, and
libnbd 1.14 cannot negotiate extended headers at all. The server answering is real
(qemu-nbd 10); this only writes the requests, byte by byte as the extension text has them.

usage: ext_client.py SOCKET_PATH
Prints one line per answer; exits non-zero on anything unexpected."""
import os, socket, struct, sys

sys.path.insert(0, os.path.dirname(__file__))
from ext_wire import *  # noqa: F401,F403  (the wire helpers both clients share)


def main():
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    magic, ihaveopt, hflags = struct.unpack(">QQH", recv_exact(s, 18))
    assert magic == NBDMAGIC and ihaveopt == IHAVEOPT
    s.sendall(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES
    print("extended_headers", option(s, OPT_EXT)[-1][0])
    # Structured replies after extended headers: qemu-nbd 10 answers ERR_EXT_HEADER_REQD.
    print("structured_reply", hex(option(s, OPT_SR)[-1][0]))
    query = b"base:allocation"
    meta = option(s, OPT_SET_META, struct.pack(">I", 0) + struct.pack(">II", 1, len(query)) + query)
    context_id = struct.unpack(">I", meta[0][1][:4])[0]
    print("meta_context", context_id, meta[0][1][4:].decode())
    go = option(s, OPT_GO, struct.pack(">IH", 0, 0))
    info = [d for t, d in go if t == 3 and struct.unpack(">H", d[:2])[0] == 0][0]
    size, eflags = struct.unpack(">QH", info[2:12])
    print("export", size, hex(eflags))
    assert eflags & 0x1000, "no BLOCK_STATUS_PAYLOAD"

    def expect_done(cookie, what):
        flags, rtype, c, _, payload = reply(s)
        assert c == cookie and flags & 1, (what, c, flags)
        if rtype & 0x8000:
            err = struct.unpack(">I", payload[:4])[0]
            print(what, "error", err)
        else:
            print(what, "ok", rtype)

    # A compliant WRITE (PAYLOAD_LEN set), then zeroes and block status beyond 4 GiB.
    # The export must be 16 GiB.
    request(s, "WRITE", 1, 5 * GIB, 4096, FLAG_PAYLOAD_LEN, b"\x5a" * 4096)
    expect_done(1, "write")
    request(s, "WRITE_ZEROES", 2, 6 * GIB, 6 * GIB, FLAG_NO_HOLE)
    expect_done(2, "zero_6g")
    # A TRIM running 1 GiB past the end: the server's error chunk, in extended form.
    request(s, "TRIM", 3, 12 * GIB, 5 * GIB)
    expect_done(3, "trim_past_end")
    request(s, "BLOCK_STATUS", 4, 0, 16 * GIB)
    flags, rtype, c, _, payload = reply(s)
    assert rtype == 6 and c == 4, (rtype, c)  # NBD_REPLY_TYPE_BLOCK_STATUS_EXT
    ctx, count = struct.unpack(">II", payload[:8])
    extents = [struct.unpack(">QQ", payload[8 + 16 * i: 24 + 16 * i]) for i in range(count)]
    print("block_status_ext", ctx, extents[:3])
    if not flags & 1:
        expect_done(4, "block_status_end")
    # BLOCK_STATUS with a payload (effect length, then the context ids), as
    # NBD_FLAG_BLOCK_STATUS_PAYLOAD allows: the header's length is the payload's.
    body = struct.pack(">QI", 8 * GIB, context_id)
    request(s, "BLOCK_STATUS", 5, 4 * GIB, len(body), FLAG_PAYLOAD_LEN | FLAG_REQ_ONE, body)
    flags, rtype, c, _, payload = reply(s)
    assert rtype == 6 and c == 5, (rtype, c)
    ext = struct.unpack(">QQ", payload[8:24])
    print("block_status_payload", ext)
    if not flags & 1:
        expect_done(5, "block_status_payload_end")
    request(s, "READ", 6, 5 * GIB, 4096)
    data = b""
    while True:
        flags, rtype, c, _, payload = reply(s)
        if rtype == 1:
            data += payload[8:]
        elif rtype == 2:
            data += bytes(struct.unpack(">QI", payload)[1])
        if flags & 1:
            break
    assert data == b"\x5a" * 4096, data[:16]
    print("read ok")
    request(s, "FLUSH", 7, 0, 0)
    expect_done(7, "flush")
    request(s, "DISC", 8, 0, 0)
    s.close()
    print("done")


main()
