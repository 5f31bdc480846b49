#!/usr/bin/python3
"""Measures nbdkit's nozero filter over every zeromode x fastzeromode, on three upstream
"plugins" (nbdkit eval) that differ only in zero support: native zero with fast zero, native
zero without fast zero, no zero at all. For each combination it records the transmission
flags nbdkit shows (raw NBD_OPT_GO after STRUCTURED_REPLY, via probe.py), the answer to a
set of WRITE_ZEROES requests (libnbd with strict mode off, so unadvertised flags are sent),
and which calls reached the plugin with which flags (the eval scripts log them).
Writes nozero.json next to this script. Usage: ./measure-nozero.py   (needs nbdkit, python3-libnbd)"""
import errno, json, os, shutil, socket, subprocess, sys, tempfile, time
import nbd
sys.dont_write_bytecode = True  # no __pycache__ in the fixtures directory
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probe

SIZE = 256 << 20
PLUGINS = {
    "zero+fast": ("exit 0", "exit 0"),
    "zero": ("exit 0", "exit 3"),
    "no-zero": ("exit 3", "exit 3"),
}
ZEROMODES = ["none", "emulate", "notrim", "plugin"]
FASTZEROMODES = ["none", "slow", "ignore", "default"]
# (name, count, offset, flags): the last one may kill nbdkit (assertion) when FAST_ZERO is
# sent to an export that does not advertise it, so it runs last.
REQUESTS = [
    ("zero", 65536, 0, 0),
    ("zero NO_HOLE", 65536, 65536, nbd.CMD_FLAG_NO_HOLE),
    ("zero FUA 100MiB", 100 << 20, 1 << 20, nbd.CMD_FLAG_FUA),
    ("zero FAST_ZERO", 65536, 131072, nbd.CMD_FLAG_FAST_ZERO),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def command(plugin, zeromode, fastzeromode, port, log):
    can_zero, can_fast_zero = PLUGINS.get(plugin, ("CAN_ZERO", "CAN_FAST_ZERO"))
    return ["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port), "--filter=nozero", "eval",
            f"get_size=echo {SIZE}", "pread=dd if=/dev/zero count=$3 iflag=count_bytes status=none",
            f'pwrite=echo "pwrite $3 $4 $5" >> {log}; cat >/dev/null',
            f'zero=echo "zero $3 $4 $5" >> {log}',
            "can_write=exit 0", "can_flush=exit 0", "can_trim=exit 0", "can_fua=echo native",
            f"can_zero={can_zero}", f"can_fast_zero={can_fast_zero}",
            f"zeromode={zeromode}", f"fastzeromode={fastzeromode}"]


def shown_flags(port):
    s, _ = probe.open_conn("127.0.0.1", port, cflags=3)
    probe.option(s, probe.OPTS["STRUCTURED_REPLY"])
    replies = probe.option(s, probe.OPTS["GO"], probe.info_request(""))
    flags = probe.export_flags(replies)
    if flags is None:
        probe.close(s)
        return f"refused: {probe.final(replies)}"
    probe.close(s, transmission=True)
    return f"0x{flags[1]:x}"


def run(plugin, zeromode, fastzeromode, tmp):
    log = os.path.join(tmp, "plugin.log")
    open(log, "w").close()
    port = free_port()
    proc = subprocess.Popen(command(plugin, zeromode, fastzeromode, port, log),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        result = {"eflags": shown_flags(port), "requests": {}}
        if result["eflags"].startswith("refused"):
            return result
        h = nbd.NBD()
        h.set_strict_mode(0)
        h.connect_tcp("127.0.0.1", str(port))
        for name, count, offset, flags in REQUESTS:
            before = open(log).read().splitlines()
            try:
                h.zero(count, offset, flags)
                answer = "OK"
            except nbd.Error as e:
                answer = errno.errorcode.get(e.errnum, str(e)) if e.errnum else f"error: {e.string}"
            if proc.poll() is not None:
                answer += f" (nbdkit exited {proc.returncode})"
            after = open(log).read().splitlines()
            result["requests"][name] = {"answer": answer, "plugin_calls": after[len(before):]}
            if proc.poll() is not None:
                break
        try:
            h.shutdown()
        except nbd.Error:
            pass
        return result
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err = proc.stderr.read()
        if "Assertion" in err:
            result["nbdkit_stderr"] = [l for l in err.splitlines() if "Assertion" in l]


def main():
    tmp = tempfile.mkdtemp()
    try:
        out = {
            "version": subprocess.run(["nbdkit", "--version"], capture_output=True, text=True).stdout.strip(),
            "measured_by": "Tests/NBDEmulationTests/Fixtures/measure-nozero.py",
            "server_command": " ".join(repr(a) if " " in a else a
                                       for a in command("PLUGIN", "ZEROMODE", "FASTZEROMODE", "PORT", "LOG")),
            "plugins": {k: {"can_zero": v[0], "can_fast_zero": v[1]} for k, v in PLUGINS.items()},
            "requests": [{"name": n, "count": c, "offset": o, "flags": f} for n, c, o, f in REQUESTS],
            "results": {},
        }
        for plugin in PLUGINS:
            for z in ZEROMODES:
                for f in FASTZEROMODES:
                    key = f"{plugin} zeromode={z} fastzeromode={f}"
                    out["results"][key] = run(plugin, z, f, tmp)
                    print(key, out["results"][key]["eflags"],
                          {k: v["answer"] for k, v in out["results"][key]["requests"].items()}, file=sys.stderr)
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "nozero.json"), "w") as fh:
            json.dump(out, fh, indent=1, sort_keys=True)
    finally:
        shutil.rmtree(tmp)


main()
