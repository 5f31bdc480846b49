"""The sweep section of the benchmark suite (`bench/run --only sweep`): queue depth 1-32 on
one connection (fio, reads and writes), connections 1/4/16/64 at depth 8 (fio --numjobs),
and qemu-img bench (Debian 12's qemu 7.2 and qemu 10) at depths 1, 4 and 16, each path side
by side in every round as the proxy section does, with the proxy's CPU per I/O.

It reuses bench.py's processes, paths and helpers (passed in as `lib`, the running
bench.py module), so it cannot drift from the proxy section's method."""

import json
import os
import re


class FioSweep:
    """fio 4 KiB random I/O, `jobs` connections of `depth` requests each."""
    kind = "fio"

    def __init__(self, rw, depth, jobs=None):
        self.rw, self.depth, self.jobs = rw, depth, jobs or 1
        # The connections sweep names its one-job row too, apart from the depth sweep's.
        self.key = f"fio-{rw}-qd{depth}" + (f"-j{jobs}" if jobs else "")

    def run(self, lib, ctx, uri, outfile):
        jf = outfile + ".json"
        argv = ["fio", "--name=sweep", "--ioengine=nbd", f"--uri={uri}", f"--rw={self.rw}", "--bs=4k",
                f"--iodepth={self.depth}", f"--numjobs={self.jobs}", "--group_reporting", "--time_based",
                f"--runtime={ctx.fio_runtime}", f"--size={ctx.copy_size}", "--output-format=json", f"--output={jf}"]
        rc, wall, _ = lib.PROCS.run(self.key, argv, stderr=outfile, timeout=ctx.fio_runtime + 120)
        if rc != 0:
            return {"error": f"fio exit {rc}: {lib.tail(outfile)}"}
        with open(jf) as f:
            job = json.load(f)["jobs"][0]
        side = job["read" if "read" in self.rw else "write"]
        return {"value": side["iops"], "ios": side["total_ios"], "wall_s": wall}


class QemuImgBench:
    """`qemu-img bench -f raw -c COUNT -s 4k -S 4k -d DEPTH URI`: qemu's own NBD driver as
    the client (one connection, reads)."""
    kind = "fio"

    def __init__(self, name, binary, depth, count):
        self.name, self.binary, self.depth, self.count = name, binary, depth, count
        self.key = f"qemu-img-bench-{name}-d{depth}"

    def run(self, lib, ctx, uri, outfile):
        argv = [self.binary, "bench", "-f", "raw", "-c", str(self.count), "-s", "4k", "-S", "4k", "-d", str(self.depth), uri]
        rc, wall, _ = lib.PROCS.run(self.key, argv, stdout=outfile, stderr=outfile + ".err", timeout=600)
        text = open(outfile).read() if os.path.exists(outfile) else ""
        m = re.search(r"Run completed in ([0-9.]+) seconds", text)
        if rc != 0 or not m:
            return {"error": f"qemu-img bench exit {rc}: {lib.tail(outfile + '.err')}"}
        seconds = float(m.group(1))
        return {"value": self.count / seconds, "ios": self.count, "wall_s": wall}


def run_sweep_section(args, nbdtap, lib):
    ctx = lib.ProxyContext()
    ctx.nbdtap = nbdtap
    ctx.tmp = lib.make_temp("nbdtap-sweep-")
    ctx.out_dir = lib.make_temp("nbdtap-sweep-", "/dev/shm")
    ctx.copy_size = 512 * lib.MiB
    ctx.fio_runtime = args.sweep_runtime
    up_sock = os.path.join(ctx.tmp, "upstream.sock")
    upstream = lib.PROCS.start("nbdkit-memory", ["nbdkit", "-f", "--exit-with-parent", "-U", up_sock, "memory",
                                                 str(ctx.copy_size)], stderr=os.path.join(ctx.tmp, "upstream.err"))
    lib.wait_unix(up_sock, upstream)
    ctx.upstream_uri = lib.unix_uri(up_sock)
    # Data everywhere, so reads move bytes and no server skips a hole.
    src = os.path.join(ctx.out_dir, "fill.img")
    lib.make_source_file(src, ctx.copy_size)
    lib.PROCS.run("prefill", ["nbdcopy", src, ctx.upstream_uri], stderr=os.path.join(ctx.tmp, "prefill.err"))
    os.unlink(src)

    # The floor: a relay that only makes the system calls any proxy must (floor-relay.c).
    floor = lib.build_floor_relay(ctx.tmp)
    paths = [lib.Direct(), lib.NBDTapPath("tap-log", "nbdtap --log FILE (nbdkit format)", ["--log"]),
             lib.PersistentProxy("floor-relay", "a minimal C relay: poll, read, write (bench/floor-relay.c)",
                                 lambda c, s: [floor, s, up_sock]),
             lib.PersistentProxy("nbdkit-nbd", "nbdkit nbd plugin",
                                 lambda c, s: ["nbdkit", "-f", "--exit-with-parent", "-U", s, "nbd", f"socket={up_sock}"]),
             lib.PersistentProxy("qemu-nbd", "qemu-nbd -f raw (NBD URI as image)",
                                 lambda c, s: ["qemu-nbd", "-f", "raw", "-k", s, "--persistent", "-e", "64",
                                               lib.unix_uri(up_sock)])]
    qemu10 = os.path.join(lib.ROOT, ".peers", "qemu-10", "usr", "bin", "qemu-img")
    sweeps = {
        "depth": [FioSweep(rw, d) for rw in ("randread", "randwrite") for d in (1, 2, 4, 8, 16, 32)],
        "connections": [FioSweep("randread", 8, j) for j in (1, 4, 16, 64)],
        "qemu": [QemuImgBench(name, binary, d, args.sweep_qemu_count)
                 for name, binary in (("7.2", "qemu-img"), ("10", qemu10)) for d in (1, 4, 16)],
    }
    for p in paths:
        p.setup(ctx)
    results = {}
    n = 0
    try:
        for r in range(args.sweep_rounds):
            for group in sweeps.values():
                for w in group:
                    order = paths[r % len(paths):] + paths[:r % len(paths)]
                    for p in order:
                        n += 1
                        uri = p.before_run(ctx)
                        res = w.run(lib, ctx, uri, os.path.join(ctx.tmp, f"run-{n}.out"))
                        res.update(p.after_run(ctx))
                        res["round"] = r
                        results.setdefault((w.key, p.key), []).append(res)
                        lib.log(f"sweep round {r + 1}/{args.sweep_rounds} {w.key:24} {p.key:11} "
                                + (res["error"] if "error" in res else f"{res['value']:10.0f} IOPS"))
    finally:
        for p in paths:
            p.teardown(ctx)
        lib.PROCS.stop(upstream)

    summary = []
    tables = []
    for name, group in sweeps.items():
        rows = []
        for w in group:
            direct = {x["round"]: x for x in results.get((w.key, "direct"), []) if "error" not in x}
            row = [w.key, lib.fmt(lib.median([x["value"] for x in direct.values()])) if direct else "error"]
            for p in paths[1:]:
                ok = [x for x in results.get((w.key, p.key), []) if "error" not in x]
                ratios = [x["value"] / direct[x["round"]]["value"] for x in ok if x["round"] in direct]
                cpu = [x["cpu_s"] / x["ios"] * 1e6 for x in ok if x.get("cpu_s") is not None and x.get("ios")]
                hwm = [x["hwm_kib"] / 1024 for x in ok if x.get("hwm_kib")]
                s = {"sweep": name, "workload": w.key, "path": p.key,
                     "ratio": lib.median(ratios) if ratios else None,
                     "ratio_min": min(ratios) if ratios else None, "ratio_max": max(ratios) if ratios else None,
                     "cpu_us_per_io": lib.median(cpu) if cpu else None,
                     "peak_rss_mib": max(hwm) if hwm else None, "runs": results.get((w.key, p.key), [])}
                summary.append(s)
                if ratios:
                    row.append(f"{lib.fmt(s['ratio'], 2)} ({lib.fmt(min(ratios), 2)}–{lib.fmt(max(ratios), 2)}), "
                               f"{lib.fmt(s['cpu_us_per_io'], 1)} µs"
                               + (f", {lib.fmt(s['peak_rss_mib'], 0)} MiB" if name == "connections" else ""))
                else:
                    row.append("error")
            rows.append(row)
        headers = ["workload", "direct IOPS"] + [f"{p.key}: × direct, CPU/I/O" for p in paths[1:]]
        tables.append(f"**{name}**\n\n" + lib.md_table(headers, rows, ["l"] + ["r"] * (len(headers) - 1)))
    svg = depth_plot(summary)
    notes = [f"{args.sweep_rounds} rounds of {args.sweep_runtime:g} s fio runs (qemu-img bench: "
             f"{args.sweep_qemu_count:,} requests), paths alternated within each round; × direct: median over "
             "rounds of (path ÷ direct in the same round); CPU/I/O: the proxy process's utime+stime per I/O; "
             "peak RSS (connections sweep): VmHWM of the proxy.",
             "nbdkit memory 512 MiB upstream on a Unix socket; nbdtap logs to tmpfs.",
             "floor-relay: a C relay of poll, read and write with no decoding (bench/floor-relay.c), the "
             "least any proxy costs here; tap-log ÷ floor-relay is what nbdtap itself costs."]
    return {"table": "\n\n".join(tables), "notes": notes, "summary": summary, "svg": svg,
            "settings": {"rounds": args.sweep_rounds, "runtime": args.sweep_runtime}}


def depth_plot(summary):
    """Ratio to direct against queue depth, one line per path and direction, as SVG."""
    lines = {}
    for s in summary:
        m = re.fullmatch(r"fio-(randread|randwrite)-qd(\d+)", s["workload"])
        if s["sweep"] != "depth" or not m or s["ratio"] is None:
            continue
        lines.setdefault((s["path"], m.group(1)), []).append((int(m.group(2)), s["ratio"]))
    depths = [1, 2, 4, 8, 16, 32]
    w, h, left, top, bottom = 640, 360, 60, 20, 50
    top_ratio = max([1.2] + [r for pts in lines.values() for _, r in pts])
    x = lambda d: left + depths.index(d) * (w - left - 160) / (len(depths) - 1)
    y = lambda r: top + (1 - r / top_ratio) * (h - top - bottom)
    colors = {"tap-log": "#0072B2", "floor-relay": "#999999", "nbdkit-nbd": "#E69F00", "qemu-nbd": "#009E73"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>']
    for r in [0.2 * i for i in range(int(top_ratio / 0.2) + 1)]:
        out.append(f'<line x1="{left}" x2="{w - 160}" y1="{y(r):.1f}" y2="{y(r):.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 8}" y="{y(r) + 4:.1f}" text-anchor="end">{r:.1f}</text>')
    for d in depths:
        out.append(f'<text x="{x(d):.1f}" y="{h - bottom + 18}" text-anchor="middle">{d}</text>')
    out.append(f'<text x="{(left + w - 160) / 2:.0f}" y="{h - 12}" text-anchor="middle">queue depth (fio, 4 KiB, one connection)</text>')
    out.append(f'<text x="14" y="{top + (h - top - bottom) / 2:.0f}" transform="rotate(-90 14 {top + (h - top - bottom) / 2:.0f})" '
               'text-anchor="middle">IOPS ÷ direct</text>')
    for i, ((path, rw), pts) in enumerate(sorted(lines.items())):
        pts.sort()
        color = colors.get(path, "#666")
        dash = "" if rw == "randread" else ' stroke-dasharray="6 4"'
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="'
                   + " ".join(f"{x(d):.1f},{y(r):.1f}" for d, r in pts) + '"/>')
        out.append(f'<line x1="{w - 150}" x2="{w - 120}" y1="{top + 10 + 18 * i}" y2="{top + 10 + 18 * i}" '
                   f'stroke="{color}" stroke-width="2"{dash}/><text x="{w - 114}" y="{top + 14 + 18 * i}">{path} {rw[4:]}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
