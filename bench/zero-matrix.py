#!/usr/bin/env python3
"""The 2019 fast-zero cover letter's matrix, with nbdtap in place of nbdkit's nozero filter.

Upstream: nbdkit memory 100M behind --filter=blocksize maxdata=256k and --filter=delay
delay-write=20ms delay-zero=5ms. Between it and the client: nbdtap proxy with each row's
--zeromode/--fastzeromode. Client: a copy that pre-zeroes the way qemu-img 4.x did
(python3-libnbd): fast-zero the whole image in 32 MiB requests; if that fails (or fast zero
is not offered), zero each hole instead; then write the data. Source: 100 MiB, 1 MiB of
data at every even MiB. Counts come from nbdtap's own log of the client's requests.

Usage: bench/zero-matrix.py [--nbdtap PATH] [--markdown FILE]
Run from the repository after `swift build -c release`. Only Unix sockets in a temporary
directory; every process is stopped by PID.
"""
import argparse, os, re, signal, subprocess, sys, tempfile, time

MiB = 1 << 20
SIZE = 100 * MiB
ROWS = ["", "zeromode=plugin fastzeromode=ignore", "zeromode=emulate fastzeromode=ignore",
        "zeromode=emulate fastzeromode=none", "zeromode=plugin fastzeromode=none",
        "zeromode=emulate", "zeromode=plugin"]

CLIENT = r'''
import nbd, os, sys, time
MiB = 1 << 20
SIZE = 100 * MiB
h = nbd.NBD()
h.connect_uri(os.environ["uri"])
data = bytes([0x5a]) * MiB
t = time.time()
prezeroed = False
if h.can_fast_zero():
    try:
        for off in range(0, SIZE, 32 * MiB):
            h.zero(min(32 * MiB, SIZE - off), off, nbd.CMD_FLAG_FAST_ZERO)
        prezeroed = True
    except nbd.Error:
        prezeroed = False
for mib in range(0, 100):
    if mib % 2 == 0:
        h.pwrite(data, mib * MiB)
    elif not prezeroed:
        if h.can_zero():
            h.zero(MiB, mib * MiB)
        else:
            h.pwrite(bytes(MiB), mib * MiB)
h.flush()
print("elapsed %.3f prezeroed %s" % (time.time() - t, prezeroed))
h.shutdown()
'''

def counts(log):
    c = {"write_ops": 0, "write_bytes": 0, "zero_ops": 0, "zero_bytes": 0, "fast0": 0, "fast1": 0, "zero_errors": 0}
    for line in open(log):
        m = re.search(r" (Write|Zero) id=\d+ offset=0x[0-9a-f]+ count=0x([0-9a-f]+).*\.\.\.$", line)
        if m:
            n = int(m.group(2), 16)
            if m.group(1) == "Write":
                c["write_ops"] += 1; c["write_bytes"] += n
            else:
                c["zero_ops"] += 1; c["zero_bytes"] += n
                c["fast1" if "fast=1" in line else "fast0"] += 1
        if re.search(r" \.\.\.Zero id=\d+ return=-1", line):
            c["zero_errors"] += 1
    return c

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nbdtap", default=".build/release/nbdtap")
    ap.add_argument("--markdown")
    a = ap.parse_args()
    env = dict(os.environ, PATH="/usr/bin:" + os.environ.get("PATH", ""))
    rows = []
    with tempfile.TemporaryDirectory(prefix="zero-matrix-") as d:
        client = os.path.join(d, "client.py")
        open(client, "w").write(CLIENT)
        for i, row in enumerate(ROWS):
            up = os.path.join(d, "up%d.sock" % i)
            srv = subprocess.Popen(["nbdkit", "-f", "--exit-with-parent", "-U", up, "--filter=blocksize", "--filter=delay",
                                    "memory", "100M", "maxdata=256k", "delay-write=20ms", "delay-zero=5ms"], env=env)
            for _ in range(500):
                if os.path.exists(up): break
                time.sleep(0.01)
            log = os.path.join(d, "row%d.log" % i)
            args = []
            for kv in row.split():
                k, v = kv.split("=")
                args += ["--" + k, v]
            t = time.time()
            r = subprocess.run([a.nbdtap, "proxy", "--upstream", "nbd+unix:///?socket=" + up, "--quiet", "--log", log]
                               + args + ["--run", "python3 " + client], env=env, capture_output=True, text=True)
            wall = time.time() - t
            srv.send_signal(signal.SIGTERM); srv.wait()
            if r.returncode != 0:
                print("row %r failed: %s" % (row, r.stderr[-500:]), file=sys.stderr)
                sys.exit(1)
            m = re.search(r"elapsed ([0-9.]+) prezeroed (\w+)", r.stdout)
            c = counts(log)
            rows.append((row or "''", float(m.group(1)), m.group(2), c))
            print("%-40s %7.2f s  writes %4d (%6.1f MiB)  zeroes %3d (%6.1f MiB)  fast=0 %3d  fast=1 %2d  failed zeroes %d" % (
                row or "''", float(m.group(1)), c["write_ops"], c["write_bytes"] / MiB, c["zero_ops"], c["zero_bytes"] / MiB,
                c["fast0"], c["fast1"], c["zero_errors"]), flush=True)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("| nbdtap options | elapsed s | pre-zeroed | write ops | write MiB | zero ops | zero MiB | Zero fast=0 | Zero fast=1 | failed zeroes |\n")
            f.write("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
            for row, el, pz, c in rows:
                f.write("| `%s` | %.2f | %s | %d | %.1f | %d | %.1f | %d | %d | %d |\n" % (
                    row, el, pz, c["write_ops"], c["write_bytes"] / MiB, c["zero_ops"], c["zero_bytes"] / MiB, c["fast0"], c["fast1"], c["zero_errors"]))

if __name__ == "__main__":
    main()
