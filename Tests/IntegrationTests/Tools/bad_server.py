#!/usr/bin/env python3
"""A hand-written NBD server that breaks the protocol on purpose (Python 3 stdlib only).

Usage: bad_server.py SOCKET

No real server sends a malformed reply, so the failure tests need this one.  It does a
correct fixed-newstyle handshake (NBD_OPT_GO, NBD_OPT_EXPORT_NAME; every other option
gets NBD_REP_ERR_UNSUP, so replies stay simple), serves a 1 MiB export of zeroes, and:
  export "bad":  answers the first request with a reply whose magic is 0xdeadbeef;
  export "halfread": answers a READ with its reply header and half its data, then closes;
  export "closeonwrite": closes as soon as a WRITE header arrives, its data unread;
  any other export: answers correctly (READ returns zeroes, everything else succeeds),
so a good connection can run next to a bad one.
"""
import os
import socket
import struct
import sys
import threading

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
SIZE = 1 << 20
EFLAGS = 0x0001 | 0x0004  # HAS_FLAGS | SEND_FLUSH


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        part = s.recv(n - len(buf))
        if not part:
            raise EOFError
        buf += part
    return buf


def option_reply(s, opt, rtype, data=b""):
    s.sendall(struct.pack(">QIII", REPLY_MAGIC, opt, rtype, len(data)) + data)


def negotiate(s):
    """Returns the export name once transmission starts."""
    s.sendall(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, 0x3))  # FIXED_NEWSTYLE | NO_ZEROES
    cflags, = struct.unpack(">I", recv_exact(s, 4))
    while True:
        magic, opt, length = struct.unpack(">QII", recv_exact(s, 16))
        data = recv_exact(s, length)
        if opt == 1:  # EXPORT_NAME
            s.sendall(struct.pack(">QH", SIZE, EFLAGS) + (b"" if cflags & 2 else b"\0" * 124))
            return data.decode()
        if opt == 7:  # GO
            namelen, = struct.unpack_from(">I", data)
            name = data[4:4 + namelen].decode()
            option_reply(s, opt, 3, struct.pack(">HQH", 0, SIZE, EFLAGS))  # NBD_REP_INFO, NBD_INFO_EXPORT
            option_reply(s, opt, 1)  # ACK
            return name
        if opt == 2:  # ABORT
            option_reply(s, opt, 1)
            raise EOFError
        option_reply(s, opt, 0x80000001)  # NBD_REP_ERR_UNSUP


def serve(s):
    try:
        name = negotiate(s)
        while True:
            magic, flags, cmd, cookie, offset, length = struct.unpack(">IHHQQI", recv_exact(s, 28))
            if cmd == 2:  # DISC
                break
            if cmd == 1 and name == "closeonwrite":
                break
            if cmd == 1:  # WRITE: consume the payload
                recv_exact(s, length)
            if name == "bad":
                s.sendall(struct.pack(">IIQ", 0xDEADBEEF, 0, cookie))
                continue
            if name == "halfread" and cmd == 0:
                s.sendall(struct.pack(">IIQ", 0x67446698, 0, cookie) + b"\0" * (length // 2))
                break
            s.sendall(struct.pack(">IIQ", 0x67446698, 0, cookie) + (b"\0" * length if cmd == 0 else b""))
    except (EOFError, OSError):
        pass
    finally:
        s.close()


def main():
    path = sys.argv[1]
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path + ".tmp")
    srv.listen(16)
    os.rename(path + ".tmp", path)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
