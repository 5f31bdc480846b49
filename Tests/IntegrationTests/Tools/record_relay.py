#!/usr/bin/env python3
"""A recording relay for the byte-transparency tests (Python 3 stdlib only).

Usage: record_relay.py LISTEN_SOCKET UPSTREAM_SOCKET OUTDIR PREFIX

Accepts connections on the Unix socket LISTEN_SOCKET and relays each one, unchanged, to
a new connection to UPSTREAM_SOCKET.  It does not speak NBD: it only copies bytes.  For
connection N (counted from 1 in accept order) it writes what the accepting side sent
to OUTDIR/PREFIX-N.c2s, what the upstream side sent to OUTDIR/PREFIX-N.s2c, and, once
both directions have ended, an empty OUTDIR/PREFIX-N.done.  An EOF in one direction
is passed on as a half-close (shutdown SHUT_WR), so the peers see the same ordering of
end-of-stream they would see without the relay.
"""
import os
import socket
import sys
import threading


def pump(src, dst, path):
    with open(path, "wb") as out:
        while True:
            try:
                data = src.recv(1 << 20)
            except OSError:
                data = b""
            if not data:
                break
            out.write(data)
            try:
                dst.sendall(data)
            except OSError:
                # The receiver is gone: keep draining (and recording) what the sender
                # still sends, as the sender did send it.
                pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve(n, down, upstream, outdir, prefix):
    base = os.path.join(outdir, "%s-%d" % (prefix, n))
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        up.connect(upstream)
    except OSError:
        down.close()
        open(base + ".c2s", "wb").close()
        open(base + ".s2c", "wb").close()
        open(base + ".done", "wb").close()
        return
    t = threading.Thread(target=pump, args=(down, up, base + ".c2s"), daemon=True)
    t.start()
    pump(up, down, base + ".s2c")
    t.join()
    down.close()
    up.close()
    open(base + ".done", "wb").close()


def main():
    listen, upstream, outdir, prefix = sys.argv[1:5]
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = listen + ".tmp"
    srv.bind(tmp)
    srv.listen(64)
    os.rename(tmp, listen)  # the socket appears only once it accepts connections
    n = 0
    while True:
        down, _ = srv.accept()
        n += 1
        threading.Thread(target=serve, args=(n, down, upstream, outdir, prefix), daemon=True).start()


if __name__ == "__main__":
    main()
