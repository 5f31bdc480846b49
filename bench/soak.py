#!/usr/bin/python3
"""Soak and fault test of the proxy (not in CI): mixed real clients with connection churn
through one nbdtap, the upstream killed and restarted every few minutes, bad clients mixed
in; nbdtap's RSS, descriptors and threads sampled every second; at the end every worker's
last acknowledged data is read back and verified through a fresh connection.

Upstream: nbdkit's file plugin on a 256 MiB file (data survives its restarts), Unix socket.
Clients: python3-libnbd sessions (write a pattern, flush, read it back; 8 workers, each on
its own 16 MiB region), fio (randwrite with crc32c verify), nbdcopy (in, out, cmp),
qemu-img convert + compare, and bad clients (garbage, silence until the handshake
timeout, a half-sent WRITE then a hang-up). Failures while the upstream is down are
expected and counted; a data mismatch is a failure of the run.

Usage: bench/soak.py [--minutes 30] [--nbdtap .build/release/nbdtap] [--markdown FILE]
Unix sockets in a temporary directory only; every process is ended by PID.
"""
import argparse, os, random, signal, socket, statistics, struct, subprocess, sys, tempfile, threading, time

os.environ["PATH"] = "/usr/bin:" + os.environ["PATH"]
import nbd  # python3-libnbd (Debian's /usr/bin/python3)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20
SIZE = 256 * MiB
procs = []
lock = threading.Lock()
counts = {}


def count(key, n=1):
    with lock:
        counts[key] = counts.get(key, 0) + n


def start(args, **kw):
    p = subprocess.Popen(args, **kw)
    procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_for(path, timeout=10):
    end = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > end:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.02)


class Upstream:
    def __init__(self, d):
        self.disk, self.sock, self.proc = os.path.join(d, "disk.raw"), os.path.join(d, "up.sock"), None
        subprocess.run(["truncate", "-s", str(SIZE), self.disk], check=True)

    def up(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = start(["nbdkit", "-f", "-U", self.sock, "file", self.disk], stderr=subprocess.DEVNULL)
        wait_for(self.sock)

    def down(self):
        stop(self.proc)


def libnbd_worker(uri, index, end, acked):
    """Writes a fresh pattern over its region, flushes, reads it back; remembers the last
    pattern the server acknowledged (flush returned) for the final check."""
    base = 64 * MiB + index * 16 * MiB
    while time.time() < end:
        h = nbd.NBD()
        try:
            h.connect_uri(uri)
            for _ in range(random.randint(1, 20)):
                seed = random.getrandbits(32)
                data = random.Random(seed).randbytes(1 * MiB)
                off = base + random.randrange(16) * MiB
                acked.pop((index, off), None)  # unknown until this write is acknowledged
                h.pwrite(data, off)
                h.flush()
                acked[(index, off)] = seed
                if h.pread(len(data), off) != data:
                    count("libnbd data mismatch")
                count("libnbd verified MiB")
            h.shutdown()
            count("libnbd sessions")
        except nbd.Error:
            count("libnbd errors (upstream restarts)")
            time.sleep(0.2)
        del h  # libnbd 1.14's Python handle closes when released


def run_command(name, cmd, end, pause, cwd=None):
    while time.time() < end:
        # cwd: fio writes its verify state file (local-*-verify.state) where it runs.
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=cwd)
        count(f"{name} runs")
        if r.returncode != 0:
            count(f"{name} failures (upstream restarts)")
        time.sleep(pause)


def bad_clients(sock, end):
    while time.time() < end:
        kind = random.choice(["garbage", "silent", "half-write"])
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(20)
            s.connect(sock)
            if kind == "garbage":
                s.sendall(os.urandom(4096))
            elif kind == "silent":
                s.recv(100)
                s.recv(100)  # until the handshake timeout closes it
            else:
                s.recv(18)
                s.sendall(struct.pack(">I", 3) + struct.pack(">QII", 0x49484156454F5054, 1, 0))
                s.recv(10)
                s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, 1, 0, 1 * MiB) + b"x" * 1000)
            s.close()
            count(f"bad clients ({kind})")
        except OSError:
            count("bad clients refused")
        time.sleep(0.5)


def sample(pid):
    status = open(f"/proc/{pid}/status").read()
    rss = int([l for l in status.splitlines() if l.startswith("VmRSS:")][0].split()[1])
    threads = int([l for l in status.splitlines() if l.startswith("Threads:")][0].split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--restart-every", type=float, default=180, help="seconds between upstream kills")
    ap.add_argument("--nbdtap", default=os.path.join(REPO, ".build/release/nbdtap"))
    ap.add_argument("--markdown")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="nbdtap-soak-")
    up = Upstream(d)
    up.up()
    px = os.path.join(d, "px.sock")
    tap = start([args.nbdtap, "proxy", "--upstream", f"nbd+unix:///?socket={up.sock}", "--listen", f"nbd+unix:///?socket={px}",
                 "--log", "/dev/shm/nbdtap-soak.log" if os.path.isdir("/dev/shm") else os.path.join(d, "px.log"), "--quiet",
                 "--handshake-timeout", "5"], stderr=open(os.path.join(d, "px.err"), "w"))
    wait_for(px)
    uri = f"nbd+unix:///?socket={px}"
    begin = time.time()
    end = begin + args.minutes * 60
    acked = {}
    src = os.path.join(d, "src.raw")
    with open(src, "wb") as f:
        f.write(random.Random(1).randbytes(8 * MiB))
    window = f"driver=raw,size={8 * MiB},file.driver=nbd,file.server.type=unix,file.server.path={px}"
    threads = [threading.Thread(target=libnbd_worker, args=(uri, i, end, acked)) for i in range(8)]
    threads += [
        threading.Thread(target=run_command, args=("fio", f"fio --name=s --ioengine=nbd --uri='{uri}' --rw=randwrite --bs=4k "
                         f"--offset=16M --size=16M --iodepth=8 --verify=crc32c --do_verify=1 --verify_fatal=1 --output=/dev/null", end, 2, d)),
        # nbdcopy and qemu-img both write the same 8 MiB at 0; qemu-img compare reads that
        # window back (a raw node with offset and size over the NBD export).
        threading.Thread(target=run_command, args=("nbdcopy", f"nbdcopy {src} '{uri}'", end, 2)),
        threading.Thread(target=run_command, args=("qemu-img", f"qemu-img convert -n -f raw {src} --target-image-opts '{window}' && "
                         f"qemu-img compare --image-opts 'driver=raw,file.filename={src}' '{window}'", end, 3)),
        threading.Thread(target=bad_clients, args=(px, end)),
    ]
    for t in threads:
        t.start()
    samples, restarts, next_kill = [], 0, begin + args.restart_every
    while time.time() < end:
        samples.append((time.time() - begin,) + sample(tap.pid))
        if time.time() >= next_kill:
            up.down()
            time.sleep(2)
            up.up()
            restarts += 1
            next_kill += args.restart_every
        time.sleep(1)
    for t in threads:
        t.join()
    # Every worker's last acknowledged pattern, read back through a fresh connection.
    h = nbd.NBD()
    h.connect_uri(uri)
    bad = sum(1 for (i, off), seed in acked.items() if h.pread(MiB, off) != random.Random(seed).randbytes(MiB))
    h.shutdown()
    alive = tap.poll() is None
    stop(tap)
    up.down()
    warm = [s for s in samples if s[0] >= 60] or samples
    rows = [
        f"Soak: {args.minutes:g} minutes, upstream restarted {restarts} times, nbdtap {'served throughout' if alive else 'EXITED'}.",
        "",
        "| measure | after warm-up (60 s on): min | median | max | last |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, i in (("RSS (MiB)", 1), ("descriptors", 2), ("threads", 3)):
        vals = [s[i] / (1024 if i == 1 else 1) for s in warm]
        rows.append(f"| {name} | {min(vals):.1f} | {statistics.median(vals):.1f} | {max(vals):.1f} | {vals[-1]:.1f} |")
    # RSS over time: a leak shows as a rising line, a heap's high-water mark as a plateau.
    marks = [samples[min(len(samples) - 1, int(len(samples) * k / 6))] for k in range(1, 7)] if samples else []
    rows += ["", "| time (s) | " + " | ".join(f"{m[0]:.0f}" for m in marks) + " |", "|---|" + "---:|" * len(marks),
             "| RSS (MiB) | " + " | ".join(f"{m[1] / 1024:.0f}" for m in marks) + " |"]
    rows += ["", "| counter | value |", "|---|---:|"]
    rows += [f"| {k} | {v} |" for k, v in sorted(counts.items())]
    rows += [f"| regions verified at the end | {len(acked)} |", f"| regions that read back wrong | {bad} |"]
    text = "\n".join(rows)
    print(text)
    if args.markdown:
        open(args.markdown, "w").write(text + "\n")
    for p in procs:
        stop(p)
    sys.exit(0 if alive and bad == 0 and counts.get("libnbd data mismatch", 0) == 0 else 1)


try:
    main()
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
