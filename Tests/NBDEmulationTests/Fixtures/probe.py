#!/usr/bin/env python3
"""Probe an NBD server's handshake the way a careful client would, one fresh connection per
question, and print what it answered as JSON: handshake flags, the final reply to each option,
and the transmission flags it shows with and without structured replies.

usage: probe.py HOST PORT EXPORT        (newstyle server)
       probe.py HOST PORT --oldstyle     (oldstyle server: only the greeting's flags)

Raw sockets on purpose: libnbd 1.14 cannot send NBD_OPT_EXTENDED_HEADERS, and nbdinfo hides
which option a server refused."""
import json, socket, struct, sys, time

NBDMAGIC, IHAVEOPT, CLISERV = 0x4E42444D41474943, 0x49484156454F5054, 0x00420281861253
REPLY_MAGIC = 0x3E889045565A9
OPTS = {"EXPORT_NAME": 1, "ABORT": 2, "LIST": 3, "STARTTLS": 5, "INFO": 6, "GO": 7,
        "STRUCTURED_REPLY": 8, "LIST_META_CONTEXT": 9, "SET_META_CONTEXT": 10,
        "EXTENDED_HEADERS": 11, "UNKNOWN_99": 99}
REPS = {1: "ACK", 2: "SERVER", 3: "INFO", 4: "META_CONTEXT"}
ERRS = {1: "ERR_UNSUP", 2: "ERR_POLICY", 3: "ERR_INVALID", 4: "ERR_PLATFORM", 5: "ERR_TLS_REQD",
        6: "ERR_UNKNOWN", 7: "ERR_SHUTDOWN", 8: "ERR_BLOCK_SIZE_REQD", 9: "ERR_TOO_BIG",
        10: "ERR_EXT_HEADER_REQD"}


def rep_name(t):
    return ERRS.get(t & 0x7FFFFFFF, hex(t)) if t & 0x80000000 else REPS.get(t, hex(t))


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            raise EOFError(f"EOF after {len(out)} of {n} bytes")
        out += b
    return out


def connect(host, port):
    """Retries a refused connection for 5 s: nbd-server -d must be restarted per session."""
    for _ in range(50):
        try:
            return socket.create_connection((host, port), timeout=5)
        except ConnectionRefusedError:
            time.sleep(0.1)
    return socket.create_connection((host, port), timeout=5)


def open_conn(host, port, cflags=1):
    """Connects and reads the greeting; a connection reset before the greeting is retried
    (an exiting nbd-server -d may still accept on its listening socket)."""
    for attempt in range(20):
        s = connect(host, port)
        try:
            magic, second = struct.unpack(">QQ", recv_exact(s, 16))
            break
        except (ConnectionResetError, EOFError):
            s.close()
            time.sleep(0.1)
    assert magic == NBDMAGIC and second == IHAVEOPT, hex(second)
    (hflags,) = struct.unpack(">H", recv_exact(s, 2))
    s.sendall(struct.pack(">I", cflags & hflags))
    return s, hflags


def option(s, opt, data=b""):
    """Sends one option; returns [(reply type name, data)] up to and including the final reply."""
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)
    replies = []
    while True:
        try:
            magic, _, typ, length = struct.unpack(">QIII", recv_exact(s, 20))
        except (EOFError, ConnectionResetError, socket.timeout) as e:
            replies.append(("DISCONNECTED", str(e)))
            return replies
        assert magic == REPLY_MAGIC, hex(magic)
        payload = recv_exact(s, length)
        replies.append((rep_name(typ), payload))
        if typ == 1 or typ & 0x80000000:
            return replies


def info_request(name, infos=()):
    n = name.encode()
    return struct.pack(">I", len(n)) + n + struct.pack(">H", len(infos)) + b"".join(struct.pack(">H", i) for i in infos)


def meta_request(name, queries):
    n = name.encode()
    out = struct.pack(">I", len(n)) + n + struct.pack(">I", len(queries))
    for q in queries:
        out += struct.pack(">I", len(q)) + q.encode()
    return out


def export_flags(replies):
    for typ, data in replies:
        if typ == "INFO" and struct.unpack(">H", data[:2])[0] == 0:
            return struct.unpack(">QH", data[2:12])
    return None


def close(s, transmission=False):
    """Ends politely (NBD_OPT_ABORT in haggling, NBD_CMD_DISC in transmission) so servers do
    not log a failed negotiation."""
    try:
        if transmission:
            s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 0, 0, 0))
        else:
            s.sendall(struct.pack(">QII", IHAVEOPT, OPTS["ABORT"], 0))
        s.settimeout(1)
        s.recv(64)
    except OSError:
        pass
    s.close()


def final(replies):
    return replies[-1][0]


def probe(host, port, export):
    result = {}
    s, hflags = open_conn(host, port)
    result["handshake_flags"] = hflags
    close(s)

    def fresh(*pre):
        s, _ = open_conn(host, port, cflags=3)
        for opt in pre:
            option(s, OPTS[opt])
        return s

    answers = {}
    for name, data, pre in [
        ("LIST", b"", ()),
        ("STARTTLS", b"", ()),
        ("INFO", info_request(export), ()),
        ("GO", info_request(export), ()),
        ("STRUCTURED_REPLY", b"", ()),
        ("LIST_META_CONTEXT", meta_request(export, []), ("STRUCTURED_REPLY",)),
        ("SET_META_CONTEXT", meta_request(export, ["base:allocation"]), ("STRUCTURED_REPLY",)),
        ("EXTENDED_HEADERS", b"", ()),
        ("UNKNOWN_99", b"", ()),
    ]:
        s = fresh(*pre)
        replies = option(s, OPTS[name], data)
        answers[name] = final(replies)
        if name == "INFO" and export_flags(replies):
            result["size_info"], result["eflags_info"] = export_flags(replies)
        if name == "LIST_META_CONTEXT":
            result["meta_contexts"] = sorted(d[4:].decode() for t, d in replies if t == "META_CONTEXT")
        if answers[name] == "ACK" and name == "STARTTLS":
            s.close()  # a TLS handshake would follow; nothing polite is possible
        else:
            close(s, transmission=answers[name] == "ACK" and name == "GO")
    result["options"] = answers

    s = fresh()
    size_flags = export_flags(option(s, OPTS["GO"], info_request(export)))
    result["size"], result["eflags_go"] = size_flags if size_flags else (None, None)
    close(s, transmission=True)
    s = fresh("STRUCTURED_REPLY")
    size_flags = export_flags(option(s, OPTS["GO"], info_request(export)))
    result["eflags_go_structured"] = size_flags[1] if size_flags else None
    close(s, transmission=True)

    s = fresh()
    n = export.encode()
    s.sendall(struct.pack(">QII", IHAVEOPT, OPTS["EXPORT_NAME"], len(n)) + n)
    _, eflags = struct.unpack(">QH", recv_exact(s, 10))
    result["eflags_export_name"] = eflags
    close(s, transmission=True)
    return result


def probe_oldstyle(host, port):
    s = connect(host, port)
    magic, second, size, flags = struct.unpack(">QQQI", recv_exact(s, 28))
    assert magic == NBDMAGIC and second == CLISERV, hex(second)
    recv_exact(s, 124)
    close(s, transmission=True)
    return {"style": "oldstyle", "size": size, "eflags_oldstyle": flags}


def main():
    host, port, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    out = probe_oldstyle(host, port) if arg == "--oldstyle" else probe(host, port, arg)
    for k in [k for k in out if k.startswith("eflags") or k == "handshake_flags"]:
        if out[k] is not None:
            out[k] = f"0x{out[k]:x}"
    print(json.dumps(out, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
