#!/usr/bin/env python3
"""nbdtap performance suite: proxy overhead, offline decoding, decoder micro-benchmarks.

Run through bench/run. Method and limits: Docs/performance.md.

Sections (all by default; --only picks some, comma-separated):
  proxy   NBD clients (nbdcopy, fio) against nbdkit memory, directly and through proxies
  decode  `nbdtap decode F.pcap` against `tshark -r F -Y nbd` on loopback captures
  micro   the Swift micro-benchmarks of the conversation decoder (Benchmarks/ package)

Every process this script starts is recorded by PID and ended by PID (at the end of its
use, or on exit, SIGINT or SIGTERM). Servers listen on Unix sockets in a temporary
directory, or on 127.0.0.1 for captures; nothing else is contacted.
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
RESULTS = os.path.join(BENCH, "results")
CACHE = os.path.join(BENCH, "cache")
MiB = 1 << 20
GiB = 1 << 30
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Processes: every one started here is tracked by PID and ended by PID.

class Processes:
    def __init__(self):
        self.live = {}

    def start(self, name, argv, stdout=None, stderr=None, env=None):
        out = open(stdout, "wb") if isinstance(stdout, str) else (stdout or subprocess.DEVNULL)
        err = open(stderr, "wb") if isinstance(stderr, str) else (stderr or subprocess.DEVNULL)
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        finally:
            if isinstance(stdout, str):
                out.close()
            if isinstance(stderr, str):
                err.close()
        p.bench_name = name
        self.live[p.pid] = p
        return p

    def forget(self, p):
        self.live.pop(p.pid, None)

    def stop(self, p, sig=signal.SIGTERM, timeout=15):
        """Ends one process by its PID: `sig`, then SIGKILL after `timeout` seconds."""
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{p.bench_name} (pid {p.pid}) did not exit on {sig!s}; killing it")
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        self.forget(p)
        return p.returncode

    def stop_all(self):
        for p in reversed(list(self.live.values())):
            self.stop(p, timeout=5)

    def run(self, name, argv, stdout=None, stderr=None, timeout=None, env=None):
        """Runs to completion; returns (exit code, wall seconds, rusage of the child)."""
        t0 = time.monotonic()
        p = self.start(name, argv, stdout=stdout, stderr=stderr, env=env)
        deadline = None if timeout is None else t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            if deadline is not None and time.monotonic() > deadline:
                log(f"{name} timed out after {timeout} s; ending it")
                os.kill(p.pid, signal.SIGKILL)
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.002)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        self.forget(p)
        return p.returncode, wall, ru


PROCS = Processes()
TEMP_DIRS = []


def cleanup():
    PROCS.stop_all()
    for d in TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)
    TEMP_DIRS.clear()


def on_signal(signum, _frame):
    log(f"signal {signum}: stopping")
    cleanup()
    sys.exit(128 + signum)


def make_temp(prefix, base=None):
    d = tempfile.mkdtemp(prefix=prefix, dir=base)
    TEMP_DIRS.append(d)
    return d


# ---------------------------------------------------------------------------------------
# Small helpers.

def proc_cpu_seconds(pid):
    """utime + stime of a whole process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def reset_hwm(pid):
    """Resets a process's peak RSS (VmHWM) to its current RSS (Linux clear_refs 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def wait_unix(path, proc, timeout=20):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.bench_name} exited with {proc.returncode} before listening on {path}")
        if os.path.exists(path):
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
                return
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.01)
    raise RuntimeError(f"{proc.bench_name} not listening on {path} after {timeout} s")


def wait_tcp(port, proc, timeout=20):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.bench_name} exited with {proc.returncode} before listening on port {port}")
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
            return
        except OSError:
            time.sleep(0.01)
        finally:
            s.close()
    raise RuntimeError(f"{proc.bench_name} not listening on port {port} after {timeout} s")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def unix_uri(path):
    return f"nbd+unix:///?socket={path}"


def tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(l.strip() for l in f.read().strip().splitlines()[-n:])
    except OSError:
        return ""


def make_source_file(path, size):
    """A fully allocated file of non-zero, non-repeating-per-MiB data (nbdcopy skips zeroes)."""
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for i in range(size // MiB):
            f.write(struct.pack(">Q", i) + block[8:])


def median(xs):
    return statistics.median(xs) if xs else None


def tool_version(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0].strip() if text else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "not found"


def fmt(x, digits=None):
    if x is None:
        return "–"
    if digits is None:
        digits = 0 if abs(x) >= 100 else (1 if abs(x) >= 10 else 2)
    return f"{x:,.{digits}f}"


def md_table(headers, rows, align=None):
    align = align or ["l"] + ["r"] * (len(headers) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Building.

def build_nbdtap(args):
    if args.nbdtap:
        path = os.path.abspath(args.nbdtap)
        log(f"using the given nbdtap binary {path} (no build)")
        return path
    log("building nbdtap: swift build -c release --product nbdtap")
    t0 = time.monotonic()
    out = subprocess.run(["swift", "build", "-c", "release", "--product", "nbdtap"], cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stdout[-4000:] + out.stderr[-4000:])
        raise SystemExit("bench: the release build of nbdtap failed (see above); "
                         "fix it, or pass --nbdtap PATH to measure an existing binary")
    binpath = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
    log(f"built in {time.monotonic() - t0:.0f} s")
    return os.path.join(binpath, "nbdtap")


# ---------------------------------------------------------------------------------------
# Section 1: proxy overhead.

class Path:
    """One way for a client to reach the upstream nbdkit memory server."""
    key = ""
    label = ""
    measured = False   # whether a proxy process's CPU and peak RSS are reported

    def setup(self, ctx):
        pass

    def before_run(self, ctx):
        """Returns the URI the client uses for the next run."""
        raise NotImplementedError

    def after_run(self, ctx):
        """Returns {"cpu_s": ..., "hwm_kib": ...} for measured paths, {} otherwise."""
        return {}

    def teardown(self, ctx):
        pass


class Direct(Path):
    key, label = "direct", "direct to nbdkit memory"

    def before_run(self, ctx):
        return ctx.upstream_uri


class DirectTCP(Path):
    """nbdkit memory on 127.0.0.1 (a second server, filled with the same data), reached
    directly: the baseline for tcpdump-direct, which tcpdump can see on lo (Unix sockets it
    cannot). With `capture`, tcpdump -i lo -U -B 65536 records each run (its CPU is the
    path's cost) to a file deleted after it."""

    def __init__(self, key, label, capture):
        self.key, self.label, self.capture = key, label, capture
        self.measured = capture
        self.n = 0

    def setup(self, ctx):
        if getattr(ctx, "tcp_uri", None) is None:
            ctx.tcp_port = free_port()
            ctx.tcp_server = PROCS.start("nbdkit-memory-tcp", ["nbdkit", "-f", "--exit-with-parent", "-i", "127.0.0.1",
                                                               "-p", str(ctx.tcp_port), "memory", str(ctx.copy_size)],
                                         stderr=os.path.join(ctx.tmp, "upstream-tcp.err"))
            deadline = time.time() + 20
            while time.time() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", ctx.tcp_port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            ctx.tcp_uri = f"nbd://127.0.0.1:{ctx.tcp_port}/"
            rc, _, _ = PROCS.run("prefill-tcp", ["nbdcopy", ctx.source_file, ctx.tcp_uri],
                                 stderr=os.path.join(ctx.tmp, "prefill-tcp.err"))
            if rc != 0:
                raise RuntimeError(f"prefill (TCP) failed: {tail(os.path.join(ctx.tmp, 'prefill-tcp.err'))}")
            self.owner = True
        else:
            self.owner = False

    def before_run(self, ctx):
        if self.capture:
            self.n += 1
            self.file = os.path.join(ctx.out_dir, f"{self.key}-{self.n}.pcap")
            err = os.path.join(ctx.tmp, f"{self.key}-{self.n}.err")
            self.proc = PROCS.start(self.key, ["tcpdump", "-i", "lo", "-U", "-B", "65536", "-w", self.file,
                                               f"tcp port {ctx.tcp_port}"], stderr=err)
            deadline = time.time() + 20
            while time.time() < deadline and "listening on" not in open(err).read():
                time.sleep(0.05)
            self.cpu0 = proc_cpu_seconds(self.proc.pid)
        return ctx.tcp_uri

    def after_run(self, ctx):
        if not self.capture:
            return {}
        res = {"cpu_s": proc_cpu_seconds(self.proc.pid) - self.cpu0, "hwm_kib": proc_hwm_kib(self.proc.pid)}
        PROCS.stop(self.proc, signal.SIGINT)
        if os.path.exists(self.file):
            res["pcap_bytes"] = os.path.getsize(self.file)
            os.unlink(self.file)
        return res

    def teardown(self, ctx):
        if self.owner:
            PROCS.stop(ctx.tcp_server)


class NBDTapPath(Path):
    measured = True

    def __init__(self, key, label, extra):
        self.key, self.label, self.extra = key, label, extra
        self.proc = None
        self.n = 0

    def before_run(self, ctx):
        # A fresh proxy per run: its CPU and peak RSS belong to this run alone, and the log
        # or pcap it writes is deleted after it.
        self.n += 1
        d = ctx.tmp
        self.sock = os.path.join(d, f"{self.key}-{self.n}.sock")
        self.files = [os.path.join(ctx.out_dir, f"{self.key}-{self.n}.{x}") for x in ("log", "pcap", "stats")]
        argv = [ctx.nbdtap, "proxy", "--upstream", ctx.upstream_uri, "--listen", unix_uri(self.sock),
                "--quiet", "--stats", self.files[2], "--stats-format", "json"]
        self.scraper = None
        for x in self.extra:
            if x == "--metrics":
                port = free_port()
                argv += [x, f"127.0.0.1:{port}"]
                self.scraper = Scraper(f"http://127.0.0.1:{port}/metrics")
            elif x == "--no-splice":
                argv += [x]
            elif x == "--pcap-snaplen":
                argv += [x, "128"]
            elif x == "--pcap-payloads":
                argv += [x, "both"]
            else:
                argv += [x, self.files[0] if x == "--log" else self.files[1]]
        if "--log" in self.extra:
            argv += ["--log-format", "nbdkit"]
        self.proc = PROCS.start(self.key, argv, stderr=os.path.join(d, f"{self.key}-{self.n}.err"))
        wait_unix(self.sock, self.proc)
        if self.scraper:
            self.scraper.start()
        self.cpu0 = proc_cpu_seconds(self.proc.pid)
        return unix_uri(self.sock)

    def after_run(self, ctx):
        pid = self.proc.pid
        cpu = proc_cpu_seconds(pid) - self.cpu0
        hwm = proc_hwm_kib(pid)
        scrapes = self.scraper.stop() if self.scraper else None
        rc = PROCS.stop(self.proc, signal.SIGTERM)
        res = {"cpu_s": cpu, "hwm_kib": hwm}
        if scrapes is not None:
            res["scrapes"] = scrapes
        if rc != 0:
            res["proxy_exit"] = rc
            res["proxy_stderr"] = tail(os.path.join(ctx.tmp, f"{self.key}-{self.n}.err"))
        try:
            with open(self.files[2]) as f:
                st = json.load(f)
            res["proxy_connections"] = st.get("connections")
            res["proxy_requests"] = st.get("requests")
        except (OSError, ValueError):
            pass
        for f in self.files:
            if os.path.exists(f):
                if not f.endswith(".stats"):
                    res[f.rsplit(".", 1)[1] + "_bytes"] = os.path.getsize(f)
                os.unlink(f)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        return res


class Scraper:
    """Fetches /metrics once a second while a run lasts, as a Prometheus server would, so
    the metrics path pays for its scrapes too."""

    def __init__(self, url):
        self.url, self.count, self.done = url, 0, threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def start(self):
        self.thread.start()

    def loop(self):
        while not self.done.wait(1.0):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    r.read()
                self.count += 1
            except OSError:
                pass

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.count


class PersistentProxy(Path):
    """A proxy started once (nbdkit's nbd plugin, qemu-nbd); CPU as a delta per run and
    peak RSS reset before each run."""
    measured = True

    def __init__(self, key, label, argv_fn):
        self.key, self.label, self.argv_fn = key, label, argv_fn

    def setup(self, ctx):
        self.sock = os.path.join(ctx.tmp, f"{self.key}.sock")
        self.proc = PROCS.start(self.key, self.argv_fn(ctx, self.sock), stderr=os.path.join(ctx.tmp, f"{self.key}.err"))
        wait_unix(self.sock, self.proc)

    def before_run(self, ctx):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.key} exited: {tail(os.path.join(ctx.tmp, self.key + '.err'))}")
        reset_hwm(self.proc.pid)
        self.cpu0 = proc_cpu_seconds(self.proc.pid)
        return unix_uri(self.sock)

    def after_run(self, ctx):
        return {"cpu_s": proc_cpu_seconds(self.proc.pid) - self.cpu0, "hwm_kib": proc_hwm_kib(self.proc.pid)}

    def teardown(self, ctx):
        PROCS.stop(self.proc)


def build_floor_relay(tmp):
    """bench/floor-relay.c, compiled into `tmp`: the least a proxy (or a recording proxy)
    costs on this machine, for nbdtap's rows to be read against."""
    floor = os.path.join(tmp, "floor-relay")
    rc, _, _ = PROCS.run("cc-floor-relay", ["cc", "-O2", "-o", floor, os.path.join(ROOT, "bench", "floor-relay.c"),
                                            "-lpthread"], stderr=os.path.join(tmp, "cc.err"))
    if rc != 0:
        raise RuntimeError(f"cannot build bench/floor-relay.c: {tail(os.path.join(tmp, 'cc.err'))}")
    return floor


class FloorRelay(PersistentProxy):
    """floor-relay.c, started once; with `record`, it writes every byte it relays to a file
    per connection in the output directory, deleted after each run."""

    def __init__(self, key, label, floor, up_sock, splice, record):
        self.record = record
        self.prefix = None
        argv = lambda c, s: ([floor] + (["--splice"] if splice else [])
                             + (["--record", self.record_prefix(c)] if record else []) + [s, up_sock])
        super().__init__(key, label, argv)

    def record_prefix(self, ctx):
        self.prefix = os.path.join(ctx.out_dir, f"{self.key}.bytes")
        return self.prefix

    def after_run(self, ctx):
        res = super().after_run(ctx)
        if self.prefix:
            d, base = os.path.split(self.prefix)
            files = [os.path.join(d, f) for f in os.listdir(d) if f.startswith(base + ".")]
            res["pcap_bytes"] = sum(os.path.getsize(f) for f in files)
            for f in files:
                os.unlink(f)
        return res


class Workload:
    key = ""
    label = ""
    kind = ""   # "copy" (MiB/s) or "fio" (IOPS)

    def run(self, ctx, uri, outfile):
        raise NotImplementedError


class CopyWorkload(Workload):
    kind = "copy"

    def __init__(self, write, conns):
        self.write, self.conns = write, conns
        self.key = f"nbdcopy-{'write' if write else 'read'}-C{conns}"

    def label_for(self, ctx):
        size = f"{ctx.copy_size // GiB} GiB" if ctx.copy_size >= GiB else f"{ctx.copy_size // MiB} MiB"
        what = "pattern file → NBD" if self.write else "NBD → null:"
        return f"nbdcopy {size} {what}, -C {self.conns}"

    def run(self, ctx, uri, outfile):
        src, dst = (ctx.source_file, uri) if self.write else (uri, "null:")
        argv = ["nbdcopy", f"--connections={self.conns}"]
        if self.conns > 1:
            # nbdcopy uses one connection per thread, threads default to the core count (2).
            argv.append(f"--threads={self.conns}")
        argv += [src, dst]
        rc, wall, _ = PROCS.run(self.key, argv, stderr=outfile, timeout=600)
        if rc != 0:
            return {"error": f"nbdcopy exit {rc}: {tail(outfile)}"}
        return {"value": ctx.copy_size / wall / MiB, "wall_s": wall, "bytes": ctx.copy_size}


class FioWorkload(Workload):
    kind = "fio"

    def __init__(self, rw, depth):
        self.rw, self.depth = rw, depth
        self.key = f"fio-{rw}-qd{depth}"

    def label_for(self, ctx):
        return f"fio 4 KiB {self.rw} iodepth {self.depth} ({ctx.fio_runtime:g} s)"

    def run(self, ctx, uri, outfile):
        jf = outfile + ".json"
        argv = ["fio", "--name=bench", "--ioengine=nbd", f"--uri={uri}", f"--rw={self.rw}", "--bs=4k",
                f"--iodepth={self.depth}", "--time_based", f"--runtime={ctx.fio_runtime}",
                f"--size={ctx.copy_size}", "--output-format=json", f"--output={jf}"]
        rc, wall, _ = PROCS.run(self.key, argv, stderr=outfile, timeout=ctx.fio_runtime + 120)
        if rc != 0:
            return {"error": f"fio exit {rc}: {tail(outfile)}"}
        with open(jf) as f:
            job = json.load(f)["jobs"][0]
        side = job["read" if "read" in self.rw else "write"]
        pct = side["clat_ns"].get("percentile", {})
        return {
            "value": side["iops"],
            "p50_us": pct.get("50.000000", 0) / 1000,
            "p99_us": pct.get("99.000000", 0) / 1000,
            "bytes": job["read"]["io_bytes"] + job["write"]["io_bytes"],
            "wall_s": wall,
            "errors": job.get("error", 0),
        }


class ProxyContext:
    pass


def run_proxy_section(args, nbdtap):
    ctx = ProxyContext()
    ctx.nbdtap = nbdtap
    ctx.tmp = make_temp("nbdtap-bench-")
    shm = make_temp("nbdtap-bench-", "/dev/shm")
    ctx.copy_size = args.copy_size
    ctx.fio_runtime = args.fio_runtime
    ctx.source_file = os.path.join(shm, "source.img")
    # The proxy's log and pcap files go to tmpfs when it has room for one run's pcap (both
    # legs of a copy: twice its size) with a margin: on disk, the writeback of gigabytes of
    # pcap slowed every path of the following runs (rounds lost a third of their speed), so
    # the disk, not the proxy, decided rows. Each file is deleted after its run.
    st = os.statvfs(shm)
    ctx.out_dir = shm if st.f_bavail * st.f_frsize > 4 * ctx.copy_size + GiB else ctx.tmp
    log(f"proxy: writing a {ctx.copy_size // MiB} MiB source file in {shm}")
    make_source_file(ctx.source_file, ctx.copy_size)

    up_sock = os.path.join(ctx.tmp, "upstream.sock")
    upstream = PROCS.start("nbdkit-memory", ["nbdkit", "-f", "--exit-with-parent", "-U", up_sock,
                                             "memory", str(ctx.copy_size)],
                           stderr=os.path.join(ctx.tmp, "upstream.err"))
    wait_unix(up_sock, upstream)
    ctx.upstream_uri = unix_uri(up_sock)
    # Fill the disk so that reads move data (nbdcopy skips what block status calls holes).
    rc, wall, _ = PROCS.run("prefill", ["nbdcopy", ctx.source_file, ctx.upstream_uri],
                            stderr=os.path.join(ctx.tmp, "prefill.err"))
    if rc != 0:
        raise RuntimeError(f"prefill failed: {tail(os.path.join(ctx.tmp, 'prefill.err'))}")

    notes = [f"nbdtap's --log and --pcap files are written to {'tmpfs (/dev/shm)' if ctx.out_dir == shm else 'disk (' + ctx.tmp + ')'} and deleted after each run."]
    paths = [Direct(), NBDTapPath("tap", "nbdtap, log off", []),
             NBDTapPath("tap-log", "nbdtap --log FILE (nbdkit format)", ["--log"]),
             NBDTapPath("tap-log-copy", "nbdtap --log FILE --no-splice (every byte through user space)", ["--log", "--no-splice"]),
             NBDTapPath("tap-metrics", "nbdtap --log FILE --metrics ADDR (scraped every second)", ["--log", "--metrics"])]
    # One look at the binary's options: older builds measured for comparison lack some.
    out = subprocess.run([nbdtap, "proxy", "--help"], capture_output=True, text=True)
    proxy_help = out.stdout + out.stderr
    if "--pcap" in proxy_help:
        paths.append(NBDTapPath("tap-pcap", "nbdtap --pcap FILE", ["--pcap"]))
        if "--pcap-payloads" in proxy_help:
            paths.append(NBDTapPath("tap-pcap-both", "nbdtap --pcap FILE --pcap-payloads both (each payload on both legs)",
                                    ["--pcap", "--pcap-payloads"]))
        if "--pcap-snaplen" in proxy_help:
            paths.append(NBDTapPath("tap-pcap-snaplen", "nbdtap --pcap FILE --pcap-snaplen 128", ["--pcap", "--pcap-snaplen"]))
    else:
        notes.append("nbdtap --pcap FILE: skipped, `nbdtap proxy --help` has no --pcap option yet.")
    # tcpdump sees TCP on lo only: its row and its baseline use a TCP nbdkit of their own.
    paths.append(DirectTCP("direct-tcp", "direct to nbdkit memory over TCP 127.0.0.1", False))
    paths.append(DirectTCP("tcpdump-direct", "direct over TCP, tcpdump -i lo -U -B 65536 -w FILE (tmpfs)", True))
    paths.append(PersistentProxy("nbdkit-nbd", "nbdkit nbd plugin",
                                 lambda c, s: ["nbdkit", "-f", "--exit-with-parent", "-U", s, "nbd",
                                               f"socket={up_sock}"]))
    paths.append(PersistentProxy("qemu-nbd", "qemu-nbd -f raw (NBD URI as image)",
                                 lambda c, s: ["qemu-nbd", "-f", "raw", "-k", s, "--persistent", "-e", "16",
                                               unix_uri(up_sock)]))
    floors = [("floor-relay", "floor: a C relay, poll, read, write (bench/floor-relay.c)", False, False),
              ("floor-splice", "floor: the C relay with splice(2)", True, False),
              ("floor-record", "floor: the C relay writing every byte once to a file (tmpfs)", False, True),
              ("floor-splice-record", "floor: the C relay with splice(2), tee(2) into the file", True, True)]
    wanted = args.paths.split(",") if args.paths else None
    if wanted is None or any(f[0] in wanted for f in floors):
        floor = build_floor_relay(ctx.tmp)
        paths += [FloorRelay(k, label, floor, up_sock, splice, record) for k, label, splice, record in floors]
        notes.append("floor-*: bench/floor-relay.c, a C relay with no decoding, no log and no framing, one thread per "
                     "connection: the least a proxy costs here (floor-relay, floor-splice), and the least a proxy that "
                     "records every byte once costs (floor-record, floor-splice-record: the bytes alone, no pcap headers, "
                     "into the same tmpfs). nbdtap's row ÷ its floor's is what nbdtap itself costs.")
    if wanted:
        paths = [p for p in paths if p.key in wanted]
    if any(p.key in ("direct-tcp", "tcpdump-direct") for p in paths):
        notes.append("direct over TCP and tcpdump-direct: a second nbdkit memory on 127.0.0.1 with the same data "
                     "(tcpdump cannot see Unix sockets); compare tcpdump-direct with direct over TCP of the same "
                     "round, whose × direct is against the Unix-socket direct path like every other row.")

    workloads = [CopyWorkload(False, 4), CopyWorkload(False, 1), CopyWorkload(True, 4), CopyWorkload(True, 1),
                 FioWorkload("randread", 1), FioWorkload("randread", 32),
                 FioWorkload("randwrite", 1), FioWorkload("randwrite", 32)]
    if args.workloads:
        keep = args.workloads.split(",")
        workloads = [w for w in workloads if w.key in keep]

    for p in paths:
        p.setup(ctx)
    results = {}   # (workload key, path key) -> [per-round dict]
    n = 0
    try:
        for r in range(args.rounds):
            for w in workloads:
                # Alternate paths within each round; rotate the order between rounds so no
                # path always runs first (page cache, CPU frequency, nbdkit's memory state).
                order = paths[r % len(paths):] + paths[:r % len(paths)]
                for p in order:
                    n += 1
                    uri = p.before_run(ctx)
                    out = os.path.join(ctx.tmp, f"run-{n}.out")
                    res = w.run(ctx, uri, out)
                    res.update(p.after_run(ctx))
                    res["round"] = r
                    results.setdefault((w.key, p.key), []).append(res)
                    if "error" in res:
                        log(f"round {r + 1} {w.key} via {p.key}: ERROR {res['error']}")
                    else:
                        log(f"round {r + 1}/{args.rounds} {w.key:22} {p.key:11} "
                            f"{res['value']:10.1f} {'MiB/s' if w.kind == 'copy' else 'IOPS'}")
    finally:
        for p in paths:
            p.teardown(ctx)
        PROCS.stop(upstream)

    # Summaries.
    rows = []
    summary = []
    for w in workloads:
        direct = {x["round"]: x for x in results.get((w.key, "direct"), []) if "error" not in x}
        for p in paths:
            runs = results.get((w.key, p.key), [])
            ok = [x for x in runs if "error" not in x]
            vals = [x["value"] for x in ok]
            ratios = [x["value"] / direct[x["round"]]["value"] for x in ok
                      if x["round"] in direct and direct[x["round"]]["value"] > 0]
            cpu_per_gib = [x["cpu_s"] / (x["bytes"] / GiB) for x in ok if p.measured and x.get("bytes")]
            hwm = [x["hwm_kib"] / 1024 for x in ok if p.measured and x.get("hwm_kib")]
            s = {
                "workload": w.key, "workload_label": w.label_for(ctx), "path": p.key, "path_label": p.label,
                "unit": "MiB/s" if w.kind == "copy" else "IOPS",
                "median": median(vals), "min": min(vals) if vals else None, "max": max(vals) if vals else None,
                "ratio_to_direct": median(ratios) if p.key != "direct" else 1.0,
                "p50_us": median([x["p50_us"] for x in ok if "p50_us" in x]),
                "p99_us": median([x["p99_us"] for x in ok if "p99_us" in x]),
                "proxy_cpu_s_per_gib": median(cpu_per_gib), "proxy_peak_rss_mib": max(hwm) if hwm else None,
                "runs": len(runs), "failed": len(runs) - len(ok),
                "errors": sorted({x["error"] for x in runs if "error" in x}),
                "rounds": runs,
            }
            summary.append(s)
            val = "failed" if not ok else f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"
            if ok and len(ok) < len(runs):
                val += f" [{len(runs) - len(ok)} failed]"
            rows.append([s["workload_label"], p.label, f"{val} {s['unit']}" if ok else val,
                         "1" if p.key == "direct" else (fmt(s["ratio_to_direct"], 2) if s["ratio_to_direct"] else "–"),
                         fmt(s["p50_us"]) if w.kind == "fio" else "", fmt(s["p99_us"]) if w.kind == "fio" else "",
                         fmt(s["proxy_cpu_s_per_gib"], 2) if p.measured else "",
                         fmt(s["proxy_peak_rss_mib"], 1) if p.measured else ""])
    headers = ["workload", "path", "median (min–max)", "× direct", "p50 µs", "p99 µs",
               "proxy CPU s/GiB", "proxy peak RSS MiB"]
    table = md_table(headers, rows, ["l", "l", "r", "r", "r", "r", "r", "r"])
    # What --metrics costs: the same proxy with and without it, round by round.
    cost_rows = []
    for w in workloads:
        base = {x["round"]: x for x in results.get((w.key, "tap-log"), []) if "error" not in x}
        with_m = [x for x in results.get((w.key, "tap-metrics"), []) if "error" not in x]
        ratios = [x["value"] / base[x["round"]]["value"] for x in with_m if x["round"] in base and base[x["round"]]["value"] > 0]
        if ratios:
            cpu = [x["cpu_s"] / (x["bytes"] / GiB) for x in with_m if x.get("bytes")]
            cpu0 = [x["cpu_s"] / (x["bytes"] / GiB) for x in base.values() if x.get("bytes")]
            cost_rows.append([w.label_for(ctx), fmt(median(ratios), 3), f"{fmt(min(ratios), 3)}–{fmt(max(ratios), 3)}",
                              fmt(median(cpu0), 2) if cpu0 else "", fmt(median(cpu), 2) if cpu else "",
                              str(sum(x.get("scrapes", 0) for x in with_m))])
    if cost_rows:
        table += "\n\n`--metrics` against the same proxy without it (both with `--log`), ratio per round (>1 is faster with metrics), median (min–max); proxy CPU s/GiB of each; scrapes served in all rounds:\n\n"
        table += md_table(["workload", "with ÷ without --metrics", "min–max", "CPU s/GiB without", "CPU s/GiB with", "scrapes"],
                          cost_rows, ["l", "r", "r", "r", "r", "r"])
    return {"table": table, "notes": notes, "summary": summary,
            "settings": {"rounds": args.rounds, "copy_size": ctx.copy_size, "fio_runtime_s": ctx.fio_runtime}}


# ---------------------------------------------------------------------------------------
# Section 2: offline decoding, nbdtap decode vs tshark.

def pcap_stats(path):
    """Packet count and captured bytes of a classic pcap file."""
    packets = 0
    with open(path, "rb") as f:
        hdr = f.read(24)
        magic = hdr[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            endian = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            endian = ">"
        else:
            raise RuntimeError(f"{path}: not a classic pcap file")
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                break
            incl = struct.unpack(endian + "IIII", rec)[2]
            f.seek(incl, 1)
            packets += 1
    return {"packets": packets, "bytes": os.path.getsize(path)}


def capture(args, name, size, workload_fn, tmp):
    """Records a loopback capture of a workload against nbdkit memory on a free TCP port,
    cached under bench/cache/ with a JSON sidecar."""
    os.makedirs(CACHE, exist_ok=True)
    pcap = os.path.join(CACHE, name + ".pcap")
    meta_path = pcap + ".json"
    if os.path.exists(pcap) and os.path.exists(meta_path) and not args.recapture:
        with open(meta_path) as f:
            meta = json.load(f)
        if not meta.get("dropped_by_kernel"):
            log(f"decode: using cached {os.path.relpath(pcap, ROOT)} ({meta['bytes'] / 1e6:.0f} MB)")
            return pcap, meta
    shutil.rmtree(pcap[:-len(".pcap")] + ".nbdt.d", ignore_errors=True)
    # tcpdump -U writes each packet as it comes: on 2 cores it can fall behind a fast client
    # and the kernel drops packets. The small-request client is slowed down and, if packets
    # were still dropped, the capture is made again more slowly.
    for attempt in range(3):
        port = free_port()
        server = PROCS.start("nbdkit-tcp", ["nbdkit", "-f", "--exit-with-parent", "-i", "127.0.0.1", "-p", str(port),
                                            "memory", str(size)], stderr=os.path.join(tmp, "tcp-server.err"))
        try:
            wait_tcp(port, server)
            errf = os.path.join(tmp, name + ".tcpdump.err")
            part = pcap + ".part"
            tcpdump = PROCS.start("tcpdump", ["tcpdump", "-i", "lo", "-U", "-B", "262144", "-s", "0",
                                              "--immediate-mode", "-w", part, f"tcp port {port}"], stderr=errf)
            t0 = time.monotonic()
            while "listening on" not in tail(errf, 20):
                if tcpdump.poll() is not None or time.monotonic() - t0 > 10:
                    PROCS.stop(tcpdump)
                    raise RuntimeError(f"tcpdump did not start: {tail(errf)}")
                time.sleep(0.02)
            time.sleep(0.3)
            try:
                info = workload_fn(f"nbd://127.0.0.1:{port}", attempt)
            finally:
                time.sleep(0.5)
                PROCS.stop(tcpdump, signal.SIGINT)
            m = re.search(r"(\d+) packets dropped by kernel", tail(errf, 20))
            dropped = int(m.group(1)) if m else None
            os.replace(part, pcap)
        finally:
            PROCS.stop(server)
        if not dropped:
            break
        log(f"decode: {name}: {dropped} packets dropped by the kernel; capturing again more slowly")
    meta = pcap_stats(pcap)
    meta.update({"port": port, "dropped_by_kernel": dropped, "workload": info,
                 "made": datetime.datetime.now().isoformat(timespec="seconds")})
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
    log(f"decode: captured {os.path.relpath(pcap, ROOT)}: {meta['bytes'] / 1e6:.0f} MB, "
        f"{meta['packets']} packets, {dropped} dropped by kernel")
    return pcap, meta


def transcripts_for(pcap, meta, tmp):
    """The capture's connections as .nbdt transcripts (scripts/pcap-to-transcript.py), cached
    beside it, so `nbdtap decode` can be measured on the same bytes before it reads pcap."""
    d = pcap[:-len(".pcap")] + ".nbdt.d"
    done = os.path.join(d, "done.json")
    if not os.path.exists(done):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        errf = os.path.join(tmp, "pcap-to-transcript.err")
        rc, wall, _ = PROCS.run("pcap-to-transcript", [sys.executable, os.path.join(ROOT, "scripts", "pcap-to-transcript.py"),
                                                       "--port", str(meta["port"]), "-o", os.path.join(d, "conn.nbdt"), pcap],
                                stdout=os.path.join(tmp, "pcap-to-transcript.out"), stderr=errf, timeout=1800)
        with open(done, "w") as f:
            json.dump({"exit": rc, "seconds": wall, "stderr": tail(errf, 3)}, f)
    with open(done) as f:
        conv = json.load(f)
    files = [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".nbdt")]
    key = lambda p: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", os.path.basename(p))]
    return (sorted(files, key=key) if conv["exit"] in (0, 2) else []), conv


def small_fio_workload(tmp, small_n):
    """The small-request capture's client: fio 4 KiB randrw at iodepth 8, rate-capped (more
    slowly on each retry) so that tcpdump keeps up."""
    def small_workload(uri, attempt):
        jf = os.path.join(tmp, "capture-fio.json")
        rate = [4000, 2000, 1000][attempt]   # per direction: reads + writes at most twice this
        argv = ["fio", "--name=capture", "--ioengine=nbd", f"--uri={uri}", "--rw=randrw", "--bs=4k", "--iodepth=8",
                f"--rate_iops={rate}", f"--io_size={small_n * 4096}", "--size=256M", "--output-format=json",
                f"--output={jf}"]
        rc, _, _ = PROCS.run("fio", argv, stderr=os.path.join(tmp, "capture-fio.err"), timeout=900)
        if rc != 0:
            raise RuntimeError(f"fio: {tail(os.path.join(tmp, 'capture-fio.err'))}")
        with open(jf) as f:
            job = json.load(f)["jobs"][0]
        ios = job["read"]["total_ios"] + job["write"]["total_ios"]
        return {"what": f"fio 4 KiB randrw iodepth 8, {ios} I/Os, at most {rate} IOPS each way", "fio_ios": ios}

    return small_workload


def run_decode_section(args, nbdtap):
    tmp = make_temp("nbdtap-bench-decode-")
    shm = make_temp("nbdtap-bench-decode-", "/dev/shm")
    large = args.decode_large_mib * MiB
    small_n = args.decode_small_requests

    def large_workload(uri, _attempt):
        src = os.path.join(shm, "source.img")
        make_source_file(src, large)
        for argv in (["nbdcopy", src, uri], ["nbdcopy", uri, "null:"]):
            rc, _, _ = PROCS.run("nbdcopy", argv, stderr=os.path.join(tmp, "capture-nbdcopy.err"), timeout=600)
            if rc != 0:
                raise RuntimeError(f"{argv}: {tail(os.path.join(tmp, 'capture-nbdcopy.err'))}")
        return {"what": f"nbdcopy {large // MiB} MiB write then read (256 KiB requests, default connections)"}

    small_workload = small_fio_workload(tmp, small_n)

    captures = [
        ("large", f"large transfers: nbdcopy {large // MiB} MiB write + read", f"large-{large // MiB}MiB",
         2 * large + 64 * MiB, large_workload),
        ("small", f"small requests: fio 4 KiB randrw, {small_n:,} I/Os", f"small-{small_n}", 256 * MiB, small_workload),
    ]
    rows = []
    summary = []
    conversions = []
    for key, label, name, size, fn in captures:
        pcap, meta = capture(args, name, size, fn, tmp)
        # Read the file once so every tool finds it in the page cache.
        with open(pcap, "rb") as f:
            while f.read(8 * MiB):
                pass
        transcripts, conv = transcripts_for(pcap, meta, tmp)
        conversions.append((key, conv))
        # "via libpcap": the same command with NBDTAP_CAPTURE_READER=libpcap, libpcap
        # reading the file and every frame copied, as before nbdtap read files in place.
        per_tool = {"nbdtap decode F.pcap": [], "nbdtap decode F.pcap via libpcap": [], "nbdtap decode F.nbdt": [],
                    "tshark -Y nbd": []}
        if not transcripts:
            del per_tool["nbdtap decode F.nbdt"]
        for r in range(args.decode_rounds):
            for tool in (list(per_tool) if r % 2 == 0 else list(reversed(per_tool))):
                if tool.startswith("nbdtap"):
                    inputs = [pcap] if ".pcap" in tool else transcripts
                    env = dict(os.environ, NBDTAP_CAPTURE_READER="libpcap") if tool.endswith("via libpcap") else None
                    stats = os.path.join(tmp, "decode-stats.json")
                    if os.path.exists(stats):
                        os.unlink(stats)
                    errf = os.path.join(tmp, "decode.err")
                    rc, wall, ru = PROCS.run("nbdtap-decode", [nbdtap, "decode", *inputs, "--stats", stats,
                                                                "--stats-format", "json", "--log", "/dev/null"],
                                             stderr=errf, timeout=1800, env=env)
                    res = {"wall_s": wall, "peak_rss_kib": ru.ru_maxrss, "cpu_s": ru.ru_utime + ru.ru_stime}
                    try:
                        with open(stats) as f:
                            res["requests"] = json.load(f)["requests"]
                    except (OSError, ValueError, KeyError):
                        res["requests"] = None
                    if rc != 0 or res["requests"] is None:
                        what = "not supported yet" if ".pcap" in tool else "failed"
                        res = {"error": f"{what} (exit {rc}: {tail(errf, 2)[:200]})"}
                else:
                    out = os.path.join(tmp, "tshark.out")
                    errf = os.path.join(tmp, "tshark.err")
                    rc, wall, ru = PROCS.run("tshark", ["tshark", "-r", pcap, "-Y", "nbd", "-T", "fields",
                                                        "-e", "nbd.magic", "-e", "nbd.type"],
                                             stdout=out, stderr=errf, timeout=1800)
                    if rc != 0:
                        res = {"error": f"tshark exit {rc}: {tail(errf, 2)[:200]}"}
                    else:
                        # nbd.type is also shown on simple replies it matched to a request: count
                        # the values that belong to requests (request magic 0x25609513).
                        count = replies = 0
                        with open(out) as f:
                            for line in f:
                                parts = line.rstrip("\n").split("\t")
                                if len(parts) < 2 or not parts[1]:
                                    continue
                                magics = parts[0].split(",")
                                types = parts[1].split(",")
                                if len(magics) != len(types):
                                    magics = ["0x25609513"] * len(types)
                                for m in magics:
                                    if m == "0x25609513":
                                        count += 1
                                    else:
                                        replies += 1
                        res = {"wall_s": wall, "peak_rss_kib": ru.ru_maxrss, "cpu_s": ru.ru_utime + ru.ru_stime,
                               "requests": count, "replies_with_type": replies}
                per_tool[tool].append(res)
                log(f"decode {key} round {r + 1}/{args.decode_rounds} {tool}: "
                    + (res["error"] if "error" in res else f"{res['wall_s']:.2f} s, {res['requests']} requests"))
        for tool, runs in per_tool.items():
            ok = [x for x in runs if "error" not in x]
            walls = [x["wall_s"] for x in ok]
            s = {"capture": key, "capture_label": label, "file": os.path.relpath(pcap, ROOT), "tool": tool,
                 "file_bytes": meta["bytes"], "packets": meta["packets"], "dropped_by_kernel": meta.get("dropped_by_kernel"),
                 "runs": runs}
            if ok:
                w = median(walls)
                s.update({"wall_s": w, "wall_min": min(walls), "wall_max": max(walls),
                          "MB_per_s": meta["bytes"] / w / 1e6, "packets_per_s": meta["packets"] / w,
                          "requests": ok[-1]["requests"], "peak_rss_mib": max(x["peak_rss_kib"] for x in ok) / 1024})
                rows.append([label, f"{meta['bytes'] / 1e6:,.0f} MB, {meta['packets']:,} pkts", tool,
                             f"{fmt(w, 2)} ({fmt(min(walls), 2)}–{fmt(max(walls), 2)})",
                             fmt(s["MB_per_s"]), fmt(s["packets_per_s"]), f"{s['requests']:,}", fmt(s["peak_rss_mib"], 1)])
            else:
                s["error"] = runs[0]["error"] if runs else "not run"
                rows.append([label, f"{meta['bytes'] / 1e6:,.0f} MB, {meta['packets']:,} pkts", tool,
                             s["error"].split(" (")[0], "", "", "", ""])
            summary.append(s)
    headers = ["capture", "size", "decoder", "wall s median (min–max)", "MB/s", "packets/s", "requests found",
               "peak RSS MiB"]
    table = md_table(headers, rows, ["l", "r", "l", "r", "r", "r", "r", "r"])
    notes = ["tshark is timed as `tshark -r F -Y nbd -T fields -e nbd.magic -e nbd.type` (the dissection of "
             "`-Y nbd`, printing two fields instead of summary lines); requests found = nbd.type values on "
             "request PDUs (tshark also shows nbd.type on simple replies it matched, and decodes no structured reply).",
             "nbdtap decode F.pcap: `nbdtap decode F.pcap --stats S --stats-format json --log /dev/null`; "
             "requests found = the stats' `requests`; regular files are read in place (mapped, payload passed over "
             "by count). \"via libpcap\": the same with `NBDTAP_CAPTURE_READER=libpcap` (libpcap reads the file, "
             "every frame copied), as before.",
             "nbdtap decode F.nbdt: the same capture turned into one .nbdt transcript per connection by "
             "scripts/pcap-to-transcript.py beforehand (not timed: "
             + ", ".join(f"{k} {c['seconds']:.1f} s" for k, c in conversions) +
             "), so pcap parsing and TCP reassembly are not in its time; MB/s and packets/s are still per "
             "capture byte and packet, so the rows compare."]
    if any(s.get("dropped_by_kernel") for s in summary):
        notes.append("Some captures report packets dropped by the kernel: request counts may differ from what was sent.")
    return {"table": table, "notes": notes, "summary": summary,
            "settings": {"rounds": args.decode_rounds, "large_mib": args.decode_large_mib,
                         "small_requests": small_n}}


# ---------------------------------------------------------------------------------------
# Section 3: micro-benchmarks (the Benchmarks/ package, ordo-one/benchmark).

def run_replay_section(args, nbdtap):
    """`nbdtap replay --timing fast` of the decode section's small-request capture (fio 4 KiB
    randrw, recorded at a capped rate) against a fresh nbdkit memory on a Unix socket: the
    replay's request rate beside the rate the recording client reached (from the replay
    report's own first-to-last request times), its wall time and peak RSS."""
    tmp = make_temp("nbdtap-bench-replay-")
    small_n = args.decode_small_requests

    small_workload = small_fio_workload(tmp, small_n)

    pcap, meta = capture(args, f"small-{small_n}", 256 * MiB, small_workload, tmp)
    with open(pcap, "rb") as f:
        while f.read(8 * MiB):
            pass
    runs = []
    for r in range(args.decode_rounds):
        sock = os.path.join(tmp, f"up{r}.sock")
        server = PROCS.start("nbdkit-replay", ["nbdkit", "-f", "--exit-with-parent", "-U", sock, "memory", str(256 * MiB)],
                             stderr=os.path.join(tmp, "server.err"))
        try:
            wait_unix(sock, server)
            rep = os.path.join(tmp, "report.json")
            errf = os.path.join(tmp, "replay.err")
            rc, wall, ru = PROCS.run("nbdtap-replay", [nbdtap, "replay", pcap, "--upstream", unix_uri(sock), "--allow-writes",
                                                        "--timing", "fast", "--report", rep, "--report-format", "json"],
                                     stderr=errf, timeout=1800)
        finally:
            PROCS.stop(server)
        try:
            with open(rep) as f:
                j = json.load(f)
        except (OSError, ValueError):
            raise RuntimeError(f"replay failed (exit {rc}): {tail(errf)}")
        runs.append({"exit": rc, "wall_s": wall, "peak_rss_kib": ru.ru_maxrss, "cpu_s": ru.ru_utime + ru.ru_stime,
                     "sent": j["sent"], "matched": j["matched"], "differed": j["differed"], "not_sent": j["not_sent"],
                     "replay_rps": j["requests_per_s"], "recorded_rps": j["recorded_requests_per_s"],
                     "recorded_requests": j["recorded_requests"], "recorded_span_s": j["recorded_span_s"]})
        log(f"replay: round {r + 1}: {j['sent']} requests in {wall:.2f} s ({j['requests_per_s']:.0f}/s; "
            f"recorded {j['recorded_requests_per_s']:.0f}/s), {j['differed']} differed, exit {rc}")
    med = lambda k: median([x[k] for x in runs])
    rows = [[f"{meta['workload']['what']} ({meta['bytes'] / 1e6:.0f} MB, {meta['packets']:,} pkts)",
             f"{runs[0]['recorded_requests']:,} in {runs[0]['recorded_span_s']:.1f} s", fmt(runs[0]["recorded_rps"], 0),
             f"{fmt(med('wall_s'), 2)} ({fmt(min(x['wall_s'] for x in runs), 2)}–{fmt(max(x['wall_s'] for x in runs), 2)})",
             fmt(med("replay_rps"), 0), fmt(med("replay_rps") / max(runs[0]["recorded_rps"], 1), 1),
             fmt(med("cpu_s"), 2), fmt(med("peak_rss_kib") / 1024, 1),
             f"{runs[0]['matched']:,} / {runs[0]['differed']} / {runs[0]['not_sent']}"]]
    table = md_table(["capture", "recorded requests", "recorded req/s", "replay wall s, median (min–max)", "replay req/s",
                      "× recorded", "nbdtap CPU s", "peak RSS MiB", "matched / differed / not sent"], rows)
    notes = [f"{args.decode_rounds} rounds against a fresh nbdkit memory 256M on a Unix socket each; "
             "`nbdtap replay F.pcap --upstream nbd+unix:///?socket=S --allow-writes --timing fast`; the recorded "
             "rate is the capture's requests over its first-to-last request time (the client was capped so that "
             "tcpdump kept up)."]
    return {"table": table, "notes": notes, "runs": runs, "capture": meta}


def run_micro_section(args):
    pkg = os.path.join(ROOT, "Benchmarks")
    out_dir = make_temp("nbdtap-bench-micro-")
    env = dict(os.environ)
    if args.quick:
        env["NBDTAP_BENCH_QUICK"] = "1"
    argv = ["swift", "package", "--package-path", pkg, "--allow-writing-to-directory", out_dir,
            "benchmark", "--no-progress", "--format", "jmh", "--path", out_dir]
    log("micro: " + " ".join(shlex.quote(a) for a in argv))
    t0 = time.monotonic()
    logf = os.path.join(out_dir, "benchmark.log")
    rc, wall, _ = PROCS.run("swift-benchmark", argv, stdout=logf, stderr=logf, env=env, timeout=3600)
    log(f"micro: finished in {wall:.0f} s (build included)")
    if rc != 0:
        return {"table": "", "notes": [f"micro-benchmarks failed (exit {rc}): {tail(logf, 8)}"], "summary": [],
                "settings": {}}
    jmh = [f for f in os.listdir(out_dir) if f.endswith(".jmh.json") or f.endswith(".json")]
    data = []
    for f in jmh:
        try:
            with open(os.path.join(out_dir, f)) as fh:
                data += json.load(fh)
        except (OSError, ValueError):
            pass
    rows = []
    summary = []
    for entry in sorted(data, key=lambda e: e["benchmark"]):
        name = entry["benchmark"].rsplit(".", 1)[-1].replace("_", " ")
        metrics = {k: sorted(x for r in v.get("rawData", []) for x in r)
                   for k, v in entry.get("secondaryMetrics", {}).items()}

        def p50(key):
            vals = metrics.get(key)
            return median(vals) if vals else None
        bps, rps = p50("bytes/s"), p50("requests/s")
        mallocs, wall_us = p50("Malloc (total)"), p50("Time (wall clock)")
        s = {"benchmark": name, "bytes_per_s": bps, "requests_per_s": rps,
             "mallocs_per_iteration": mallocs, "mallocs_per_request": mallocs / 1000 if mallocs is not None else None,
             "ns_per_request": wall_us, "iterations": entry.get("measurementIterations")}
        summary.append(s)
        rows.append([name, fmt(bps / 1e6 if bps else None), fmt(rps), fmt(wall_us),
                     f"{fmt(mallocs, 0)} ({fmt(s['mallocs_per_request'], 3)})" if mallocs is not None else "–",
                     str(s["iterations"])])
    table = md_table(["benchmark (1,000 requests + handshake per iteration, 64 KiB chunks)", "MB/s", "requests/s",
                      "ns/request", "mallocs per 1,000 requests (per request)", "iterations"], rows)
    with open(logf, errors="replace") as f:
        raw = f.read()
    return {"table": table, "notes": ["Medians over iterations (ordo-one/benchmark, release build, malloc "
                                      "counts from its MallocInterposer). Payload bytes are skipped by counting, "
                                      "so MB/s grows with the request size; requests/s is the decoder's cost."],
            "summary": summary, "raw_output": raw[-20000:], "settings": {"quick": args.quick}}


# ---------------------------------------------------------------------------------------

def environment_info():
    def git(*a):
        return subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True).stdout.strip()
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "Sources", "Package.swift"))
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD") + (" (+ uncommitted changes in Sources/)" if dirty else ""),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
        "nbdkit": tool_version(["nbdkit", "--version"]),
        "nbdcopy": tool_version(["nbdcopy", "--version"]),
        "qemu-nbd": tool_version(["qemu-nbd", "--version"]),
        "fio": tool_version(["fio", "--version"]),
        "tshark": re.sub(r" \(Wireshark\)| \(Git.*", "", tool_version(["tshark", "--version"])),
        "swift": tool_version(["swift", "--version"]),
    }


def main():
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 rounds, 256 MiB copies, 2 s fio runs, small captures, no micro-benchmarks")
    ap.add_argument("--only", help="comma-separated sections: proxy, decode, replay, micro")
    ap.add_argument("--rounds", type=int, help="rounds of the proxy section (default 5, --quick 2)")
    ap.add_argument("--nbdtap", help="measure this nbdtap binary instead of building one")
    ap.add_argument("--paths", help="proxy section: only these paths (direct,tap,tap-log,tap-log-copy,tap-metrics,tap-pcap,tap-pcap-both,tap-pcap-snaplen,direct-tcp,tcpdump-direct,nbdkit-nbd,qemu-nbd,floor-relay,floor-splice,floor-record,floor-splice-record)")
    ap.add_argument("--workloads", help="proxy section: only these workloads (e.g. nbdcopy-read-C4,fio-randread-qd1)")
    ap.add_argument("--recapture", action="store_true", help="decode section: remake the cached captures")
    ap.add_argument("--no-save", action="store_true", help="print only; write nothing under bench/results/")
    ap.add_argument("--sweep-rounds", type=int, default=2, help="sweep section: rounds (default 2)")
    ap.add_argument("--sweep-runtime", type=float, default=3, help="sweep section: seconds per fio run (default 3)")
    ap.add_argument("--sweep-qemu-count", type=int, default=40000, help="sweep section: qemu-img bench requests (default 40000)")
    args = ap.parse_args()

    # --quick leaves out the micro-benchmarks (building ordo-one/benchmark alone takes about
    # three minutes on a fresh clone); `--quick --only micro` still runs them.
    sections = ["proxy", "decode", "replay"] if args.quick and not args.only else ["proxy", "decode", "replay", "micro"]
    if args.only:
        only = [s.strip() for s in args.only.split(",") if s.strip()]
        # The sweeps (queue depths, connections, qemu-img bench: ~10 min) run only when asked.
        bad = [s for s in only if s not in sections + ["sweep"]]
        if bad:
            ap.error(f"unknown section(s) {bad}; choose from {sections + ['sweep']}")
        sections = [s for s in sections + ["sweep"] if s in only]
    q = args.quick
    args.rounds = args.rounds or (2 if q else 5)
    args.copy_size = (256 if q else 1024) * MiB
    args.fio_runtime = 2 if q else 5
    args.decode_rounds = 2 if q else 3
    args.decode_large_mib = 48 if q else 192
    args.decode_small_requests = 20_000 if q else 210_000

    for tool in ["nbdkit", "nbdcopy", "fio", "qemu-nbd", "tshark", "tcpdump"]:
        if shutil.which(tool) is None and (tool in ("nbdkit", "nbdcopy", "fio", "qemu-nbd") and "proxy" in sections
                                           or tool in ("tshark", "tcpdump", "nbdkit") and "decode" in sections
                                           or tool in ("tcpdump", "nbdkit", "fio") and "replay" in sections):
            raise SystemExit(f"bench: {tool} not found (bash scripts/setup installs the peers)")

    atexit.register(cleanup)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    t0 = time.monotonic()
    env = environment_info()
    nbdtap = build_nbdtap(args) if any(s in sections for s in ("proxy", "decode", "replay", "sweep")) else None
    out = {"mode": "quick" if q else "full", "environment": env, "sections": {}}
    if "proxy" in sections:
        out["sections"]["proxy"] = run_proxy_section(args, nbdtap)
    if "decode" in sections:
        out["sections"]["decode"] = run_decode_section(args, nbdtap)
    if "replay" in sections:
        out["sections"]["replay"] = run_replay_section(args, nbdtap)
    if "micro" in sections:
        out["sections"]["micro"] = run_micro_section(args)
    if "sweep" in sections:
        import sweep
        out["sections"]["sweep"] = sweep.run_sweep_section(args, nbdtap, sys.modules[__name__])
    out["wall_s"] = time.monotonic() - t0

    titles = {"proxy": "Proxy overhead (nbdkit memory upstream, Unix sockets)",
              "decode": "Offline decoding of loopback captures",
              "replay": "Replaying the small-request capture",
              "micro": "Conversation decoder micro-benchmarks (in memory)",
              "sweep": "Queue depths, connections and qemu-img bench (nbdkit memory upstream, Unix sockets)"}
    md = [f"# nbdtap benchmark ({out['mode']}, {env['date']})", "",
          f"Commit {env['commit']}; {env['cpus']} CPUs ({env['cpu_model']}), Linux {env['kernel']}; "
          f"{env['nbdkit']}, {env['nbdcopy']}, {env['qemu-nbd']}, {env['fio']}, {env['tshark']}; "
          f"{env['swift'].splitlines()[0] if env['swift'] else ''}.",
          f"Wall time of the whole run: {out['wall_s']:.0f} s.", ""]
    for key in sections:
        sec = out["sections"][key]
        md += [f"## {titles[key]}", ""]
        if key == "proxy":
            st = sec["settings"]
            md += [f"{st['rounds']} rounds, paths alternated within each round; median (min–max) over rounds. "
                   "× direct: median over rounds of (this path ÷ direct in the same round), so >1 is faster. "
                   "Proxy CPU s/GiB: utime+stime of the proxy process per GiB moved; peak RSS: VmHWM.", ""]
        if sec["table"]:
            md += [sec["table"], ""]
        md += [f"- {n}" for n in sec["notes"]] + ([""] if sec["notes"] else [])
    text = "\n".join(md).rstrip() + "\n"
    print(text)

    if not args.no_save:
        os.makedirs(RESULTS, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if q else "")
        with open(os.path.join(RESULTS, stamp + ".md"), "w") as f:
            f.write(text)
        with open(os.path.join(RESULTS, stamp + ".json"), "w") as f:
            json.dump(out, f, indent=1, default=str)
        if "sweep" in out["sections"]:
            with open(os.path.join(RESULTS, stamp + "-depth.svg"), "w") as f:
                f.write(out["sections"]["sweep"]["svg"])
        if sections == ["proxy", "decode", "replay", "micro"]:
            with open(os.path.join(RESULTS, "latest.md"), "w") as f:
                f.write(text)
        log(f"results: bench/results/{stamp}.md and .json" +
            (" (and latest.md)" if sections == ["proxy", "decode", "replay", "micro"] else ""))
    log(f"total wall time {out['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
