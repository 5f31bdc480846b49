#!/usr/bin/env python3
"""The 2019 fast-zero cover letter's matrix, in three columns: nbdtap doing the filters' work
in front of nbdkit and in front of qemu-nbd 10, beside the cover letter's own nbdkit stack.

Rows: the cover letter's seven nozero parameter sets (ROWS: '', zeromode=plugin
fastzeromode=ignore, ...). Columns (--columns a,b,c, default all three):
 a  `nbdtap proxy` alone in front of a bare `nbdkit memory 100M` (no nbdkit filter): nbdtap does
    it all with its own options, the row's `--zeromode X --fastzeromode Y`, then
    `--max-payload 256k --delay write=20ms,zero=5ms --no-extents`.
 b  the same nbdtap command in front of qemu-nbd 10 (`qemu-nbd -f raw -t -k SOCK FILE`, a raw
    100 MiB file made with `truncate -s 100M`), which zeroes by itself, so the zeromode rows
    mean something there too. qemu-nbd's trace counts what reached it (stdout only).
 c  the cover letter's stack with nbdkit only, no nbdtap: `nbdkit --filter=log --filter=nozero
    --filter=blocksize --filter=delay --filter=stats --filter=noextents memory 100M
    zeromode=X fastzeromode=Y maxdata=256k delay-write=20ms delay-zero=5ms`. In the '' row the
    nozero filter keeps its defaults (zeromode=none: no WRITE_ZEROES at all), while nbdtap's
    default in a and b is to pass zeroes through: the '' rows differ by design.
Client (every column): a copy that pre-zeroes the way qemu-img 4.x did (python3-libnbd):
fast-zero the whole image in 32 MiB requests; if that fails (or fast zero is not offered),
zero each hole instead; then write the data. Source: 100 MiB, 1 MiB of data at every even MiB.

Counts are what the client sent, from the log nearest the client: nbdtap's nbdkit-format log
(a, b), nbdkit's log filter (c), each read by its own counting function. The client also
tallies its own requests; the "log = client" column says whether the log agrees. It cannot
in c's zeromode=emulate rows: nbdkit's core emulates zeroes above every filter, so its log
filter records the emulated Writes instead of the Zero, and fast zeroes fail there without
a log line (../shared/reference/nbdkit-formats.md).

Usage: bench/zero-matrix.py [--columns a,b,c] [--nbdtap PATH] [--qemu-nbd PATH] [--markdown FILE] [--plot DIR]
Run from anywhere after `swift build -c release` (a, b) and scripts/setup (nbdkit,
python3-libnbd; qemu 10 in .peers/qemu-10, located by scripts/peers as the tests do, or
NBDTAP_QEMU10_DIR). Only Unix sockets in a temporary directory; every process is started
here and stopped by PID (SIGTERM, then SIGKILL after a timeout).
--without-new-layers (not in --help) drops --max-payload, --delay and --no-extents from the
nbdtap command, only to test a and b's plumbing with an nbdtap built before those options
existed; its numbers are not the matrix.
"""
import argparse, os, re, shutil, signal, subprocess, sys, tempfile, time

MiB = 1 << 20
SIZE = 100 * MiB
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = ["", "zeromode=plugin fastzeromode=ignore", "zeromode=emulate fastzeromode=ignore",
        "zeromode=emulate fastzeromode=none", "zeromode=plugin fastzeromode=none",
        "zeromode=emulate", "zeromode=plugin"]
COLUMNS = {"a": "a: nbdtap, nbdkit memory", "b": "b: nbdtap, qemu-nbd 10", "c": "c: nbdkit filters"}
# nbdtap's options in a and b after the row's, in this order.
NEW_LAYERS = ["--max-payload", "256k", "--delay", "write=20ms,zero=5ms", "--no-extents"]
ROW_TIMEOUT = 300
STOP_TIMEOUT = 10
KEYS = ["write_ops", "write_bytes", "zero_ops", "zero_bytes", "fast0", "fast1", "zero_errors"]

CLIENT = r'''
import nbd, os, sys, time
MiB = 1 << 20
SIZE = 100 * MiB
h = nbd.NBD()
h.connect_uri(os.environ["uri"])
data = bytes([0x5a]) * MiB
# The client's own tally of what it sent, to check the logs against.
c = dict(write_ops=0, write_bytes=0, zero_ops=0, zero_bytes=0, fast0=0, fast1=0, zero_errors=0)
def zero(n, off, flags=0):
    c["zero_ops"] += 1; c["zero_bytes"] += n
    c["fast1" if flags & nbd.CMD_FLAG_FAST_ZERO else "fast0"] += 1
    try:
        h.zero(n, off, flags)
    except nbd.Error:
        c["zero_errors"] += 1
        raise
def pwrite(buf, off):
    c["write_ops"] += 1; c["write_bytes"] += len(buf)
    h.pwrite(buf, off)
t = time.time()
prezeroed = False
if h.can_fast_zero():
    try:
        for off in range(0, SIZE, 32 * MiB):
            zero(min(32 * MiB, SIZE - off), off, nbd.CMD_FLAG_FAST_ZERO)
        prezeroed = True
    except nbd.Error:
        prezeroed = False
for mib in range(0, 100):
    if mib % 2 == 0:
        pwrite(data, mib * MiB)
    elif not prezeroed:
        if h.can_zero():
            zero(MiB, mib * MiB)
        else:
            pwrite(bytes(MiB), mib * MiB)
h.flush()
print("elapsed %.3f prezeroed %s" % (time.time() - t, prezeroed))
print("tally " + " ".join("%s=%d" % kv for kv in c.items()))
h.shutdown()
'''


def empty():
    return dict.fromkeys(KEYS, 0)


def tally_request(c, verb, count, fast):
    if verb == "Write":
        c["write_ops"] += 1; c["write_bytes"] += count
    else:
        c["zero_ops"] += 1; c["zero_bytes"] += count
        c["fast1" if fast else "fast0"] += 1


# nbdtap's log (Docs/log-format.md): every line has connection=N; a request line ends in " ...",
# its reply starts the action with "..." and carries the same id. Write: offset count fua;
# Zero: offset count trim fua fast. A failed reply is "return=-1 error=E" (ENOTCONN: the
# connection ended first). nbdtap's own lines (Greeting, Option, Connect, Violation, ...) and
# what nbdtap sent upstream are not request lines of the client's and are not counted.
NBDTAP_REQUEST = re.compile(r"^\S+ \S+ connection=(?P<conn>\d+) (?P<action>Write|Zero) id=(?P<id>\d+) offset=0x[0-9a-f]+ "
                            r"count=0x(?P<count>[0-9a-f]+)(?: trim=[01])? fua=[01](?: fast=(?P<fast>[01]))? \.\.\.$")
NBDTAP_REPLY = re.compile(r"^\S+ \S+ connection=(?P<conn>\d+) \.\.\.Zero id=(?P<id>\d+) return=(?P<ret>-1|0)(?: error=\S+)?$")


# nbdkit 1.32's log filter (../shared/reference/nbdkit-formats.md): "connection=N " only on
# per-connection lines; Write: offset count fua; Zero: offset count trim fua fast (the log
# filter prints trim=, not nbdkit -v's may_trim=; accepted too); a request line ends in " ...",
# the reply is "...Zero id=N return=0" or "return=-1 error=ENOTSUP" (older: "(ENOTSUP)").
# ids are per connection and requests may interleave: pair by (connection, id).
NBDKIT_REQUEST = re.compile(r"^\S+ \S+ (?:connection=(?P<conn>\d+) )?(?P<action>Write|Zero) id=(?P<id>\d+) offset=0x[0-9a-f]+ "
                            r"count=0x(?P<count>[0-9a-f]+)(?P<rest>(?: [a-z_]+=\S+)*) \.\.\.$")
NBDKIT_REPLY = re.compile(r"^\S+ \S+ (?:connection=(?P<conn>\d+) )?\.\.\.Zero id=(?P<id>\d+) return=(?P<ret>-?\d+)(?: .*)?$")


def count_log(path, request, reply, fast):
    """The client's writes and zeroes in a log of either grammar (its request and reply
    patterns, and how a request line says fast=1); failed zeroes paired by (connection, id)."""
    c, zeroes = empty(), set()
    for line in open(path):
        line = line.rstrip("\n")
        m = request.match(line)
        if m:
            tally_request(c, m["action"], int(m["count"], 16), fast(m))
            if m["action"] == "Zero":
                zeroes.add((m["conn"], m["id"]))
            continue
        m = reply.match(line)
        if m and m["ret"] != "0" and (m["conn"], m["id"]) in zeroes:
            c["zero_errors"] += 1
    return c


def count_nbdtap_log(path):
    return count_log(path, NBDTAP_REQUEST, NBDTAP_REPLY, lambda m: m["fast"] == "1")


def count_nbdkit_log(path):
    return count_log(path, NBDKIT_REQUEST, NBDKIT_REPLY,
                     lambda m: dict(kv.split("=", 1) for kv in m["rest"].split()).get("fast") == "1")


def nbdkit_stats(path):
    """The stats filter's per-op lines (successful requests below nozero, blocksize and delay)."""
    out = {}
    if os.path.exists(path):
        for line in open(path):
            m = re.match(r"^(write|zero): (\d+) ops, [0-9.]+ s, ([0-9.]+) (bytes|KiB|MiB|GiB)", line)
            if m:
                scale = {"bytes": 1, "KiB": 1 << 10, "MiB": MiB, "GiB": 1 << 30}[m.group(4)]
                out[m.group(1)] = (int(m.group(2)), float(m.group(3)) * scale)
    return out


def qemu_trace(path):
    """qemu-nbd's nbd_co_receive_request_decode_type lines: requests that reached qemu-nbd."""
    text = open(path).read() if os.path.exists(path) else ""
    return {t: len(re.findall(r"\(%s\)" % t, text)) for t in ("write", "write zeroes")}


class Procs:
    """Every process this script starts, each stopped by its PID."""

    def __init__(self):
        self.live = []

    def start(self, name, argv, env, out, err):
        # A process group of its own (pgid = pid), so that SIGKILL also reaches what it started
        # (nbdtap's --run client) and a Ctrl-C reaches only this script.
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        p.name = name
        self.live.append(p)
        return p

    def stop(self, p):
        if p in self.live:
            self.live.remove(p)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print("%s (pid %d) ignored SIGTERM for %d s: SIGKILL to it and its process group" % (p.name, p.pid, STOP_TIMEOUT), file=sys.stderr)
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        return p.returncode

    def wait(self, p, timeout):
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop(p)
            raise Failure("%s (pid %d) still running after %d s: stopped" % (p.name, p.pid, timeout))
        self.live.remove(p)
        return rc

    def stop_all(self):
        for p in list(reversed(self.live)):
            self.stop(p)


class Failure(Exception):
    pass


def tail(path, n=800):
    try:
        return open(path, errors="replace").read()[-n:].strip()
    except OSError:
        return ""


def wait_for_socket(p, sock, errfile, timeout=10):
    deadline = time.time() + timeout
    while not os.path.exists(sock):
        if p.poll() is not None:
            raise Failure("%s exited (status %s) before serving %s: %s" % (p.name, p.returncode, sock, tail(errfile)))
        if time.time() > deadline:
            raise Failure("%s did not create %s in %d s" % (p.name, sock, timeout))
        time.sleep(0.01)


def row_options(row, fmt):
    out = []
    for kv in row.split():
        k, v = kv.split("=")
        out += fmt(k, v)
    return out


def parse_client(stdout_path, what):
    text = open(stdout_path).read()
    m = re.search(r"elapsed ([0-9.]+) prezeroed (\w+)", text)
    t = re.search(r"tally (.*)", text)
    if not m or not t:
        raise Failure("%s: the client printed no result: %s" % (what, text[-500:]))
    tally = {k: int(v) for k, v in (kv.split("=") for kv in t.group(1).split())}
    return float(m.group(1)), m.group(2) == "True", tally


def run_nbdtap_row(procs, env, tools, a, d, col, i, row):
    """Columns a and b: an upstream of its own for the row, nbdtap with the row's options in front."""
    up = os.path.join(d, "%s%d-up.sock" % (col, i))
    uperr = os.path.join(d, "%s%d-upstream.err" % (col, i))
    extra = ""
    if col == "a":
        argv = [tools["nbdkit"], "-f", "--exit-with-parent", "-U", up, "memory", "100M"]
        name = "nbdkit"
    else:
        disk = os.path.join(d, "b%d.raw" % i)
        subprocess.run([tools["truncate"], "-s", "100M", disk], env=env, check=True)
        argv = [tools["qemu-nbd"], "-f", "raw", "-t", "-k", up, "--trace", "nbd_co_receive_request_decode_type", disk]
        name = "qemu-nbd"
    server = procs.start(name, argv, env, subprocess.DEVNULL, open(uperr, "w"))
    try:
        wait_for_socket(server, up, uperr)
        log = os.path.join(d, "%s%d.log" % (col, i))
        out, err = os.path.join(d, "%s%d.out" % (col, i)), os.path.join(d, "%s%d.err" % (col, i))
        cmd = ([tools["nbdtap"], "proxy", "--upstream", "nbd+unix:///?socket=" + up, "--quiet", "--log", log]
               + row_options(row, lambda k, v: ["--" + k, v]) + ([] if a.without_new_layers else NEW_LAYERS)
               + (["--plot", os.path.join(a.plot, "%s%d.html" % (col, i))] if a.plot else [])
               + ["--run", "python3 " + os.path.join(d, "client.py")])
        px = procs.start("nbdtap", cmd, env, open(out, "w"), open(err, "w"))
        rc = procs.wait(px, ROW_TIMEOUT)
        if rc != 0:
            raise Failure("column %s row %r: nbdtap exited with status %d: %s\n%s" % (col, row or "''", rc, tail(err), tail(out)))
    finally:
        procs.stop(server)
    if col == "b":
        tr = qemu_trace(uperr)
        extra = "qemu-nbd received: write %d, write zeroes %d" % (tr["write"], tr["write zeroes"])
    elapsed, prezeroed, tally = parse_client(out, "column %s row %r" % (col, row or "''"))
    return elapsed, prezeroed, count_nbdtap_log(log), tally, extra


def run_nbdkit_row(procs, env, tools, d, i, row):
    """Column c: the cover letter's nbdkit stack, the client straight at it."""
    sock = os.path.join(d, "c%d.sock" % i)
    log, stats = os.path.join(d, "c%d.log" % i), os.path.join(d, "c%d.stats" % i)
    err = os.path.join(d, "c%d-nbdkit.err" % i)
    argv = ([tools["nbdkit"], "-f", "--exit-with-parent", "-U", sock, "--filter=log", "--filter=nozero", "--filter=blocksize",
             "--filter=delay", "--filter=stats", "--filter=noextents", "memory", "100M", "logfile=" + log, "statsfile=" + stats]
            + row.split() + ["maxdata=256k", "delay-write=20ms", "delay-zero=5ms"])
    server = procs.start("nbdkit", argv, env, subprocess.DEVNULL, open(err, "w"))
    try:
        wait_for_socket(server, sock, err)
        out, cerr = os.path.join(d, "c%d.out" % i), os.path.join(d, "c%d-client.err" % i)
        client = procs.start("python3 client", [tools["python3"], os.path.join(d, "client.py")],
                             dict(env, uri="nbd+unix:///?socket=" + sock), open(out, "w"), open(cerr, "w"))
        rc = procs.wait(client, ROW_TIMEOUT)
        if rc != 0:
            raise Failure("column c row %r: the client exited with status %d: %s\nnbdkit: %s" % (row or "''", rc, tail(cerr), tail(err)))
    finally:
        srv = procs.stop(server)  # the stats filter writes its file as nbdkit exits
    if srv not in (0, -signal.SIGTERM):
        raise Failure("column c row %r: nbdkit exited with status %s: %s" % (row or "''", srv, tail(err)))
    st = nbdkit_stats(stats)
    extra = "stats filter (below nozero, blocksize, delay): " + ", ".join(
        "%s %d ops %.1f MiB" % (k, st[k][0], st[k][1] / MiB) for k in ("write", "zero") if k in st)
    elapsed, prezeroed, tally = parse_client(out, "column c row %r" % (row or "''"))
    return elapsed, prezeroed, count_nbdkit_log(log), tally, extra


def find_tools(a, cols, env):
    """Every program the chosen columns need, by full path; a missing one ends the run, named."""
    path = env["PATH"]
    tools, missing = {}, []
    for name in ["python3", "truncate"] + (["nbdkit"] if set(cols) & {"a", "c"} else []):
        tools[name] = shutil.which(name, path=path)
        if not tools[name]:
            missing.append("%s (not in PATH=%s; scripts/setup installs it)" % (name, path))
    if tools.get("python3") and subprocess.run([tools["python3"], "-c", "import nbd"], env=env, capture_output=True).returncode != 0:
        missing.append("python3-libnbd (%s cannot import nbd; scripts/setup installs it)" % tools["python3"])
    if set(cols) & {"a", "b"}:
        if os.path.isfile(a.nbdtap) and os.access(a.nbdtap, os.X_OK):
            tools["nbdtap"] = os.path.abspath(a.nbdtap)
        else:
            missing.append("nbdtap (no executable at %s; run `swift build -c release` or pass --nbdtap)" % a.nbdtap)
    if "b" in cols:
        q = a.qemu_nbd
        if not q:
            bindir = subprocess.run(["bash", os.path.join(REPO, "scripts/peers"), "qemu10"], capture_output=True, text=True).stdout.strip()
            q = os.path.join(bindir or os.path.join(REPO, ".peers/qemu-10/usr/bin"), "qemu-nbd")
        version = ""
        if os.path.isfile(q) and os.access(q, os.X_OK):
            r = subprocess.run([q, "--version"], env=env, capture_output=True, text=True)
            version = (r.stdout.splitlines() or [""])[0]
        if re.search(r"(^|/)qemu-nbd 10\.", version):
            tools["qemu-nbd"] = q
            tools["qemu-nbd-version"] = re.sub(r"^\S*/", "", version)
        elif version:
            missing.append("qemu-nbd 10 (%s is %r; run scripts/setup or pass --qemu-nbd)" % (q, version))
        else:
            missing.append("qemu-nbd 10 (nothing runnable at %s; run scripts/setup or pass --qemu-nbd)" % q)
    if missing:
        sys.exit("zero-matrix: missing: " + "; ".join(missing))
    return tools


def line(label, row, el, pz, c, ok):
    return "%-26s %-38s %7.2f s  pre-zeroed %-3s  writes %4d (%6.1f MiB)  zeroes %3d (%6.1f MiB)  fast=0 %3d  fast=1 %2d  failed zeroes %d  log = client %s" % (
        label, row, el, "yes" if pz else "no", c["write_ops"], c["write_bytes"] / MiB, c["zero_ops"], c["zero_bytes"] / MiB,
        c["fast0"], c["fast1"], c["zero_errors"], "yes" if ok else "no")


def main():
    ap = argparse.ArgumentParser(description="The 2019 fast-zero matrix in three columns (see the script's docstring).")
    ap.add_argument("--columns", default="a,b,c", help="which columns to run, comma-separated: a, b, c (default a,b,c)")
    ap.add_argument("--nbdtap", default=os.path.join(REPO, ".build/release/nbdtap"))
    ap.add_argument("--qemu-nbd", help="qemu-nbd 10 (default: scripts/peers qemu10, i.e. .peers/qemu-10/usr/bin/qemu-nbd)")
    ap.add_argument("--markdown", metavar="FILE")
    ap.add_argument("--plot", metavar="DIR", help="write nbdtap's page of each nbdtap row (a, b) to DIR/COLUMN-ROW.html (proxy --plot)")
    ap.add_argument("--without-new-layers", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.plot:
        os.makedirs(a.plot, exist_ok=True)
    cols = [c.strip() for c in a.columns.split(",") if c.strip()]
    if not cols or any(c not in COLUMNS for c in cols) or len(set(cols)) != len(cols):
        ap.error("--columns takes a comma-separated list of a, b, c, each once (got %r)" % a.columns)
    env = dict(os.environ, PATH="/usr/bin:" + os.environ.get("PATH", ""))
    tools = find_tools(a, cols, env)
    if a.without_new_layers and set(cols) & {"a", "b"}:
        print("zero-matrix: --without-new-layers: nbdtap runs without %s (plumbing test, not the matrix)" % " ".join(NEW_LAYERS), file=sys.stderr)
    results = []
    procs = Procs()
    try:
        with tempfile.TemporaryDirectory(prefix="zero-matrix-") as d:
            open(os.path.join(d, "client.py"), "w").write(CLIENT)
            for col in cols:
                for i, row in enumerate(ROWS):
                    if col == "c":
                        el, pz, c, tally, extra = run_nbdkit_row(procs, env, tools, d, i, row)
                    else:
                        el, pz, c, tally, extra = run_nbdtap_row(procs, env, tools, a, d, col, i, row)
                    ok = c == tally
                    results.append((col, row or "''", el, pz, c, ok, tally))
                    print(line(COLUMNS[col], row or "''", el, pz, c, ok), flush=True)
                    if not ok:
                        print("    client's own tally: " + " ".join("%s=%d" % (k, tally[k]) for k in KEYS), flush=True)
                    if extra:
                        print("    " + extra, flush=True)
    except Failure as e:
        sys.exit("zero-matrix: " + str(e))
    finally:
        procs.stop_all()
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("| column | options | elapsed s | pre-zeroed | write ops | write MiB | zero ops | zero MiB | Zero fast=0 | Zero fast=1 | failed zeroes | log = client |\n")
            f.write("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
            for col, row, el, pz, c, ok, _ in results:
                f.write("| %s | `%s` | %.2f | %s | %d | %.1f | %d | %.1f | %d | %d | %d | %s |\n" % (
                    COLUMNS[col], row, el, "yes" if pz else "no", c["write_ops"], c["write_bytes"] / MiB, c["zero_ops"],
                    c["zero_bytes"] / MiB, c["fast0"], c["fast1"], c["zero_errors"], "yes" if ok else "no"))
            f.write("\n")
            nbdtap_opts = "" if a.without_new_layers else " " + " ".join(NEW_LAYERS)
            legend = {
                "a": "a: `nbdtap proxy --zeromode X --fastzeromode Y%s` in front of `nbdkit memory 100M` (no filters)" % nbdtap_opts,
                "b": "b: the same nbdtap in front of `qemu-nbd -f raw -t -k SOCK` (%s) serving a 100 MiB raw file" % tools.get("qemu-nbd-version", "qemu-nbd 10"),
                "c": "c: `nbdkit --filter=log --filter=nozero --filter=blocksize --filter=delay --filter=stats --filter=noextents memory 100M zeromode=X fastzeromode=Y maxdata=256k delay-write=20ms delay-zero=5ms`, no nbdtap"}
            for col in cols:
                f.write("- %s\n" % legend[col])
            f.write("- Counts: the client's requests, from the log nearest the client (nbdtap's for a and b, nbdkit's log filter for c); "
                    "\"log = client\" compares them with the client's own tally.\n")
            for col, row, el, pz, c, ok, tally in results:
                if not ok:
                    f.write("- %s `%s`: the log differs from the client's own tally: %s\n" % (
                        COLUMNS[col], row, ", ".join("%s %d" % (k, tally[k]) for k in KEYS)))
            if a.without_new_layers and set(cols) & {"a", "b"}:
                f.write("- Run with --without-new-layers: a plumbing test, not the matrix.\n")


if __name__ == "__main__":
    main()
