"""The wire of the extended-header test clients (ext_client.py, ext_split_client.py): the
constants, the option haggling, and extended requests and reply chunks, as the extension
text has them."""
import struct, sys

NBDMAGIC, IHAVEOPT, REPLY_MAGIC = 0x4E42444D41474943, 0x49484156454F5054, 0x3E889045565A9
EXT_REQUEST, EXT_REPLY = 0x21E41C71, 0x6E8A278C
OPT_GO, OPT_SR, OPT_SET_META, OPT_EXT = 7, 8, 10, 11
CMD = {"READ": 0, "WRITE": 1, "DISC": 2, "FLUSH": 3, "TRIM": 4, "WRITE_ZEROES": 6, "BLOCK_STATUS": 7}
FLAG_PAYLOAD_LEN, FLAG_REQ_ONE, FLAG_NO_HOLE = 0x20, 0x08, 0x02
GIB = 1 << 30


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


def request(s, cmd, cookie, offset, length, flags=0, payload=b""):
    s.sendall(struct.pack(">IHHQQQ", EXT_REQUEST, flags, CMD[cmd], cookie, offset, length) + payload)


def reply(s):
    """One extended reply chunk: (flags, type, cookie, offset, payload)."""
    magic, flags, rtype, cookie, offset, length = struct.unpack(">IHHQQQ", recv_exact(s, 32))
    assert magic == EXT_REPLY, hex(magic)
    return flags, rtype, cookie, offset, recv_exact(s, length)
