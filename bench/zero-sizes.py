#!/usr/bin/env python3
"""The 2019 fast-zero cover letter's footnote, measured: with 64-bit requests (extended
headers) qemu can send zero requests far larger than the 32 MiB it was capped at.

qemu-img 10 converts a mostly sparse 16 GiB qcow2 (2 MiB of data at 0, 1 MiB at 8 GiB, a
qcow2 zero cluster range of 1 GiB at 12 GiB) to a raw file served by qemu-nbd 10, through
nbdtap, once as is (extended headers) and once with --no-extended-headers (structured
replies, 32-bit lengths). nbdtap's own log counts the WRITE_ZEROES and their sizes;
qemu-nbd's trace (nbd_co_receive_request_decode_type) counts them independently. qemu-nbd runs with --discard=unmap, so the zeroes punch
holes instead of allocating 16 GiB per run. Each case
runs ROUNDS times, alternating, and reports the median elapsed time.

Usage: bench/zero-sizes.py [--nbdtap PATH] [--rounds N] [--markdown FILE]
Needs scripts/setup (qemu 10 in .peers/qemu-10). Unix sockets in a temporary directory only;
every process is stopped by PID.
"""
import argparse, collections, os, re, statistics, subprocess, sys, tempfile, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
Q10 = subprocess.run(["bash", os.path.join(REPO, "scripts/peers"), "qemu10"], capture_output=True, text=True, check=True).stdout.strip()


def wait_for(path, timeout=10):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            sys.exit(f"{path} did not appear")
        time.sleep(0.01)


def stop(p):
    p.terminate()
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def one(nbdtap, tmp, source, extra, n):
    d = os.path.join(tmp, f"run{n}")
    os.makedirs(d)
    disk = os.path.join(d, "target.raw")
    subprocess.run(["truncate", "-s", "16G", disk], check=True)
    up, px = os.path.join(d, "up.sock"), os.path.join(d, "px.sock")
    trace = open(os.path.join(d, "trace.log"), "w")
    # --discard=unmap: zeroes without NO_HOLE punch holes, so 16 GiB of zeroes take no disk.
    server = subprocess.Popen([f"{Q10}/qemu-nbd", "--persistent", "--discard=unmap", "-f", "raw", "-k", up,
                               "--trace", "nbd_co_receive_request_decode_type", disk], stderr=trace)
    wait_for(up)
    log = os.path.join(d, "px.log")
    cmd = [nbdtap, "proxy", "--upstream", f"nbd+unix:///?socket={up}", "--listen", f"nbd+unix:///?socket={px}",
           "--log", log, "--quiet"] + extra + ["--run", f"{Q10}/qemu-img convert -n -f qcow2 -O raw {source} 'nbd+unix:///?socket={px}'"]
    start = time.monotonic()
    try:
        subprocess.run(cmd, check=True, stderr=open(os.path.join(d, "px.err"), "w"))
        elapsed = time.monotonic() - start
    finally:
        # Ended by PID whatever happened, and the 16 GiB file removed.
        stop(server)
        trace.close()
        os.unlink(disk)
    zeros = [int(m.group(1), 16) for m in re.finditer(r" Zero id=\d+ offset=0x[0-9a-f]+ count=(0x[0-9a-f]+)", open(log).read())]
    writes = len(re.findall(r" Write id=\d+ ", open(log).read()))
    traced = collections.Counter(re.findall(r"type = \d+ \(([a-z ]+)\)", open(os.path.join(d, "trace.log")).read()))
    extended = "extended=1" in open(log).read()
    return elapsed, zeros, writes, traced, extended


def human(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} B"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nbdtap", default=os.path.join(REPO, ".build/release/nbdtap"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "source.qcow2")
        subprocess.run([f"{Q10}/qemu-img", "create", "-q", "-f", "qcow2", source, "16G"], check=True)
        subprocess.run([f"{Q10}/qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 2M", "-c", "write -P 0x22 8G 1M",
                        "-c", "write -z 12G 1G", source], check=True, capture_output=True)
        cases = [("extended headers (qemu 10 default)", []), ("--no-extended-headers", ["--no-extended-headers"])]
        results = {name: [] for name, _ in cases}
        n = 0
        for _ in range(args.rounds):
            for name, extra in cases:
                n += 1
                results[name].append(one(args.nbdtap, tmp, source, extra, n))
        rows = ["| nbdtap | extended headers | WRITE_ZEROES | sizes (count x size) | largest | WRITEs | qemu-nbd trace (write zeroes / write) | elapsed, median of %d |" % args.rounds,
                "|---|---|---:|---|---:|---:|---|---:|"]
        for name, _ in cases:
            runs = results[name]
            elapsed, zeros, writes, traced, extended = runs[0]
            assert all(r[1] == zeros and r[2] == writes for r in runs), "runs differ"
            sizes = collections.Counter(zeros)
            shown = ", ".join(f"{c} x {human(s)}" for s, c in sorted(sizes.items(), key=lambda kv: -kv[0]))
            med = statistics.median(r[0] for r in runs)
            rows.append(f"| {name} | {'yes' if extended else 'no'} | {len(zeros)} | {shown} | {human(max(zeros))} | {writes} | "
                        f"{traced['write zeroes']} / {traced['write']} | {med:.2f} s |")
        text = "\n".join(rows)
        print(text)
        if args.markdown:
            open(args.markdown, "w").write(text + "\n")


main()
