#!/usr/bin/env python3
"""Count requests per command and flag from a ground-truth server log.

Usage:
  count-log.py nbdkit.log [nbdkit-debug.log]   nbdkit --filter=log logfile (default
               format); with the -v log also counts requests nbdkit rejects before
               the filters see them, and NBD_CMD_DISC (rows marked [-v])
  count-log.py --qemu qemu-nbd-trace.log   qemu-nbd --trace 'nbd_*' stderr (qemu 7.2 or 10)
  count-log.py --nbdkit-debug nbdkit-debug.log   nbdkit -v stderr (transmission debug lines)
  count-log.py --nbd-server transaction.log      nbd-server transactionlog (binary)

Prints a markdown table: request (with the flags as the log spells them),
count, and outcome (ok / error names), plus per-connection totals.  It reads
only the server's log, never the wire.

qemu traces: 7.2 and 10 both print `nbd_receive_request Got request: {...}` per
request (10 also for extended-header requests, magic 0x21e41c71, 64-bit len).
10 names the request id `cookie` where 7.2 said `handle`, and renamed
nbd_co_send_structured_{read,read_hole,done,error} to nbd_co_send_chunk_*; both
spellings are read.  qemu 10's compliance events (nbd_*_compliance, e.g.
nbd_co_receive_ext_payload_compliance: a WRITE under extended headers without
NBD_CMD_FLAG_PAYLOAD_LEN) get rows of their own, not counted as requests.  On a
connection whose NBD_OPT_EXTENDED_HEADERS was acked, block status chunks are
counted as BLOCK_STATUS_EXT (what qemu-nbd sends in extended mode; the trace
line itself is the same).
"""
import collections
import re
import sys

FLAG_KEYS = {
    "Read": [], "Write": ["fua"], "Flush": [], "Trim": ["fua"],
    "Zero": ["trim", "fua", "fast"], "Extents": ["req_one"], "Cache": [],
}


# option numbers newer than nbdkit 1.32's list (it logs them as "unknown (0xN)")
NEWER_OPTS = {0xb: "NBD_OPT_EXTENDED_HEADERS"}


def parse_kv(s):
    return dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\([^)]*\)|\S+)', s))


def nbdkit_log(path, debug=None):
    counts = collections.OrderedDict()
    outcome = collections.defaultdict(collections.Counter)
    pending = {}
    per_conn = collections.Counter()
    other = []
    for line in open(path):
        line = line.rstrip("\n")
        m = re.match(r"\S+ \S+ (?:connection=(\d+) )?(\.\.\.)?(\w+)(?: id=(\d+))?(.*)$", line)
        if not m:
            continue
        conn, leave, act, rid, rest = m.groups()
        if act in FLAG_KEYS:
            key = (conn, rid)
            if not leave:
                kv = parse_kv(rest)
                label = act + "".join(" %s=%s" % (k, kv.get(k, "?")) for k in FLAG_KEYS[act])
                counts[label] = counts.get(label, 0) + 1
                pending[key] = label
                per_conn[conn] += 1
            else:
                label = pending.pop(key, act + " (unmatched)")
                kv = parse_kv(rest)
                if kv.get("return") == "0":
                    outcome[label]["ok"] += 1
                else:
                    outcome[label][kv.get("error", "return=" + kv.get("return", "?"))] += 1
        elif not leave and act in ("ListExports", "Preconnect", "Connect", "Disconnect", "Ready"):
            other.append((conn, act, rest.replace(" ...", "")))
    for key, label in pending.items():
        outcome[label]["no reply logged"] += 1
    if debug:
        # requests nbdkit's server core rejects before any filter, and DISC,
        # appear only in nbdkit -v output
        last = None
        opts = collections.OrderedDict()
        optout = collections.defaultdict(collections.Counter)
        tcp = [0]
        for line in open(debug):
            m = re.search(r"error: invalid request: (\S+): (.*?)(?:: offset=.*)?$", line.rstrip())
            if m:
                last = "%s rejected by nbdkit core (%s) [-v]" % (m.group(1), m.group(2))
                counts[last] = counts.get(last, 0) + 1
                continue
            m = re.search(r"sending error reply: (.*)$", line.rstrip())
            if m and last:
                outcome[last][m.group(1)] += 1
                last = None
                continue
            if "client sent NBD_CMD_DISC" in line:
                counts["NBD_CMD_DISC [-v]"] = counts.get("NBD_CMD_DISC [-v]", 0) + 1
                continue
            m = re.search(r"replying to (NBD_OPT_\w+) with (NBD_REP_\w+)", line)
            if m:
                lab = "option %s [-v]" % m.group(1)
                opts[lab] = opts.get(lab, 0) + 1
                optout[lab][m.group(2)] += 1
                continue
            # an option nbdkit 1.32 has no name for (e.g. qemu 10's NBD_OPT_EXTENDED_HEADERS)
            m = re.search(r"replying to unknown \((0x[0-9a-f]+)\) with (NBD_REP_\w+)", line)
            if m:
                lab = "option %s (%s, unknown to nbdkit) [-v]" % (
                    NEWER_OPTS.get(int(m.group(1), 16), "?"), m.group(1))
                opts[lab] = opts.get(lab, 0) + 1
                optout[lab][m.group(2)] += 1
                continue
            m = re.search(r"newstyle negotiation: (NBD_OPT_EXPORT_NAME): client requested", line)
            if m:
                lab = "option %s [-v]" % m.group(1)
                opts[lab] = opts.get(lab, 0) + 1
                optout[lab]["(no reply header)"] += 1
                continue
            if "accepted connection" in line:
                tcp[0] += 1
            m = re.search(r"(oldstyle|newstyle) negotiation: flags: global", line)
            if m and m.group(1) == "oldstyle":
                lab = "oldstyle greeting [-v]"
                opts[lab] = opts.get(lab, 0) + 1
        for lab, n in opts.items():
            counts[lab] = n
            outcome[lab] = optout[lab]
        if tcp[0]:
            other.insert(0, (None, "TCP connections accepted", " %d [-v]" % tcp[0]))
    return counts, outcome, per_conn, other


QEMU_TYPES = {0: "READ", 1: "WRITE", 2: "DISC", 3: "FLUSH", 4: "TRIM", 5: "CACHE",
              6: "WRITE_ZEROES", 7: "BLOCK_STATUS"}
QEMU_FLAGS = [(0x01, "FUA"), (0x02, "NO_HOLE"), (0x04, "DF"), (0x08, "REQ_ONE"), (0x10, "FAST_ZERO"),
              (0x20, "PAYLOAD_LEN")]


def flag_names(f):
    names = [n for bit, n in QEMU_FLAGS if f & bit]
    rest = f & ~0x3F
    if rest:
        names.append("0x%x" % rest)
    return "|".join(names) if names else "none"


def qemu_trace(path):
    """qemu-nbd --trace 'nbd_*': server-side lines (requests, reply chunks, options)."""
    counts = collections.OrderedDict()
    outcome = collections.defaultdict(collections.Counter)
    per_conn = collections.Counter()
    other = []
    handle_label = {}

    def add(label, n=1):
        counts[label] = counts.get(label, 0) + n

    last_req = None
    extended = False   # NBD_OPT_EXTENDED_HEADERS acked on the current connection (qemu 10)
    ID = r"(?:handle|cookie)"   # 7.2 says handle, 10 says cookie
    for line in open(path):
        m = re.search(r"nbd_receive_request Got request: \{ magic = (0x[0-9a-f]+), "
                      r"\.flags = (0x[0-9a-f]+), \.type = (0x[0-9a-f]+), from = (\d+), len = (\d+)", line)
        if m:
            t, f = int(m.group(3), 16), int(m.group(2), 16)
            last_req = "%s flags=%s" % (QEMU_TYPES.get(t, "type %d" % t), flag_names(f))
            add(last_req)
            per_conn["?"] += 1
            continue
        m = re.search(r"nbd_send_request Sending request to server: \{ \.from = (\d+), \.len = (\d+), "
                      r"\.(?:handle|cookie) = (\d+), \.flags = (0x[0-9a-f]+), \.type = (\d+)", line)
        if m:
            t, f = int(m.group(5)), int(m.group(4), 16)
            add("upstream (qemu-nbd as client): %s flags=%s" % (QEMU_TYPES.get(t, "type %d" % t), flag_names(f)))
            continue
        m = re.search(r"nbd_receive_simple_reply Got simple reply: \{ \.error = (\d+) \((\w+)\)", line)
        if m:
            outcome["upstream replies (qemu-nbd as client)"]["simple " + ("ok" if m.group(1) == "0" else m.group(2))] += 1
            add("upstream replies (qemu-nbd as client)")
            continue
        m = re.search(r"(?:nbd_receive_structured_reply_chunk Got structured reply chunk|"
                      r"nbd_receive_reply_chunk_header Got reply chunk header): "
                      r"\{ flags = (0x[0-9a-f]+), type = (\d+) \(([^)]*)\)", line)
        if m:
            outcome["upstream replies (qemu-nbd as client)"]["chunk " + m.group(3)] += 1
            if int(m.group(1), 16) & 1:
                add("upstream replies (qemu-nbd as client)")
            continue
        m = re.search(r"nbd_co_receive_request_decode_type Decoding type: " + ID + r" = (\d+)", line)
        if m and last_req:
            handle_label[m.group(1)] = last_req
            continue
        m = re.search(r"(nbd_\w+_compliance) (.*?)(?:: from=.*)?$", line.rstrip("\n"))
        if m:
            add("compliance: %s (%s)" % (m.group(2), m.group(1)))
            continue
        m = re.search(r"nbd_co_send_simple_reply Send simple reply: " + ID + r" = (\d+), error = (\d+) \((\w+)\)", line)
        if m:
            lab = handle_label.get(m.group(1), "?")
            outcome[lab]["simple reply " + ("ok" if m.group(2) == "0" else m.group(3))] += 1
            continue
        m = re.search(r"nbd_co_send_(?:structured|chunk)_error Send structured error reply: " + ID +
                      r" = (\d+), error = (\d+) \((\w+)\)", line)
        if m:
            outcome[handle_label.get(m.group(1), "?")]["error chunk " + m.group(3)] += 1
            continue
        for pat, what in ((r"nbd_co_send_(?:structured|chunk)_read Send structured read data reply: ", "OFFSET_DATA chunk"),
                          (r"nbd_co_send_(?:structured|chunk)_read_hole Send structured read hole reply: ", "OFFSET_HOLE chunk"),
                          (r"nbd_co_send_extents Send block status reply: ",
                           "BLOCK_STATUS_EXT chunk" if extended else "BLOCK_STATUS chunk"),
                          (r"nbd_co_send_(?:structured|chunk)_done Send structured reply done: ", "NONE chunk")):
            m = re.search(pat + ID + r" = (\d+)", line)
            if m:
                outcome[handle_label.get(m.group(1), "?")][what] += 1
                break
        m = re.search(r"nbd_send_option_request Sending option request (\d+) \(([^)]*)\)", line)
        if m:
            add("upstream (qemu-nbd as client): option %s (%s)" % (m.group(1), m.group(2)))
            continue
        m = re.search(r"nbd_receive_option_reply Received option reply (\d+) \(([^)]*)\), type (\d+) \(([^)]*)\)", line)
        if m:
            outcome["upstream (qemu-nbd as client): option %s (%s)" % (m.group(1), m.group(2))]["rep " + m.group(4)] += 1
            continue
        m = re.search(r"nbd_negotiate_options_check_option Checking option (\d+) \(([^)]*)\)", line)
        if m:
            add("option %s (%s)" % (m.group(1), m.group(2)))
            continue
        m = re.search(r"nbd_negotiate_send_rep_len Reply opt=(\d+) \(([^)]*)\), type=(\d+) \(([^)]*)\)", line)
        if m:
            outcome["option %s (%s)" % (m.group(1), m.group(2))]["rep " + m.group(4)] += 1
            if m.group(1) == "11" and m.group(4) == "ack":
                extended = True
            continue
        m = re.search(r"nbd_negotiate_send_rep_err Reply opt=(\d+) \(([^)]*)\), type=(\S+) \(([^)]*)\)", line)
        if m:
            outcome["option %s (%s)" % (m.group(1), m.group(2))]["rep " + m.group(4)] += 1
            continue
        if "nbd_negotiate_begin" in line:
            extended = False
            other.append((None, "negotiation begins (TCP connection)", ""))
    return counts, outcome, per_conn, other


ERRNAMES = {0: "ok", 1: "EPERM", 5: "EIO", 12: "ENOMEM", 22: "EINVAL", 28: "ENOSPC",
            75: "EOVERFLOW", 95: "ENOTSUP", 108: "ESHUTDOWN"}


def nbd_server_txlog(path):
    """nbd-server `transactionlog` (binary): 28-byte requests (magic 0x25609513,
    u32 flags<<16|type, u64 handle, u64 from, u32 len; no data) and 16-byte
    simple replies (magic 0x67446698, u32 error, u64 handle), big-endian."""
    import struct
    data = open(path, "rb").read()
    counts = collections.OrderedDict()
    outcome = collections.defaultdict(collections.Counter)
    pending = {}
    pos = 0
    other = []
    while pos + 4 <= len(data):
        magic = struct.unpack_from(">I", data, pos)[0]
        if magic == 0x25609513 and pos + 28 <= len(data):
            _m, tf, handle, _off, _ln = struct.unpack_from(">IIQQI", data, pos)
            t, f = tf & 0xFFFF, tf >> 16
            label = "%s flags=%s" % (QEMU_TYPES.get(t, "type %d" % t), flag_names(f))
            counts[label] = counts.get(label, 0) + 1
            pending[handle] = label
            pos += 28
        elif magic == 0x67446698 and pos + 16 <= len(data):
            _m, err, handle = struct.unpack_from(">IIQ", data, pos)
            outcome[pending.pop(handle, "?")][ERRNAMES.get(err, "error %d" % err)] += 1
            pos += 16
        else:
            other.append((None, "unparsed bytes at offset %d" % pos, ""))
            break
    return counts, outcome, collections.Counter(), other


def nbdkit_debug(path):
    """nbdkit -v: 'debug: <plugin/filter>: <op> count=... offset=... flags' per layer.

    Counts the lines of the outermost layer only when --layer is given;
    by default counts every layer's lines separately.
    """
    counts = collections.OrderedDict()
    outcome = collections.defaultdict(collections.Counter)
    per_conn = collections.Counter()
    other = []
    for line in open(path):
        m = re.search(r"nbdkit: (\S+?)\.(\d+): debug: (\S+): (pread|pwrite|flush|trim|zero|extents|cache)\b(.*)$", line)
        if m:
            _thread, _n, layer, op, rest = m.groups()
            kv = parse_kv(rest)
            flags = " ".join("%s=%s" % (k, v) for k, v in kv.items() if k not in ("count", "offset"))
            label = "%s: %s%s" % (layer, op, (" " + flags) if flags else "")
            counts[label] = counts.get(label, 0) + 1
    return counts, outcome, per_conn, other


def main():
    args = sys.argv[1:]
    fmt = "nbdkit"
    if args and args[0] in ("--qemu", "--nbdkit-debug", "--nbd-server"):
        fmt = args.pop(0)[2:]
    path = args[0]
    if fmt == "nbdkit":
        counts, outcome, per_conn, other = nbdkit_log(path, args[1] if len(args) > 1 else None)
    else:
        fn = {"qemu": qemu_trace, "nbdkit-debug": nbdkit_debug, "nbd-server": nbd_server_txlog}[fmt]
        counts, outcome, per_conn, other = fn(path)
    src = {"nbdkit": "nbdkit log filter ENTER lines",
           "qemu": "qemu-nbd trace: nbd_receive_request, reply and option lines",
           "nbdkit-debug": "nbdkit -v debug lines",
           "nbd-server": "nbd-server transactionlog records"}[fmt]
    print("| Request (%s) | Count | Outcome |" % src)
    print("|---|---|---|")
    order = lambda k: (2 if k.startswith("upstream replies") else 1 if k.startswith("upstream")
                       else 0.5 if k.startswith("compliance: ") else 0)
    for label, n in sorted(counts.items(), key=lambda kv: order(kv[0])):
        oc = ", ".join("%s: %d" % kv for kv in sorted(outcome[label].items())) if outcome[label] else ""
        print("| `%s` | %d | %s |" % (label, n, oc))
    print("| **total requests** | %d | |" % sum(n for k, n in counts.items() if not k.startswith(("option ", "oldstyle", "upstream", "compliance: "))))
    for conn, act, rest in (other if fmt == "nbd-server" else []):
        print("- " + act)
    if fmt == "qemu":
        print()
        print("Connections: %d (nbd_negotiate_begin lines)" % len(other))
    if fmt == "nbdkit":
        print()
        print("Per connection: " + ", ".join("connection=%s: %d requests" % kv
                                              for kv in sorted(per_conn.items())))
        for conn, act, rest in other:
            print("- %s%s%s" % ("connection=%s " % conn if conn else "", act, rest))


if __name__ == "__main__":
    main()
