#!/usr/bin/env bash
# Recreates this session: qemu-io 10 sending every kind of request it can against qemu-nbd 10 (raw file), traced.
cd "$(dirname "$0")"
source ../lib.sh
Q10=$(bash "$REPO_DIR/scripts/peers" qemu10)
rm -f session.pcap session*.nbdt README.md qemu-nbd-trace.log client.out disk.raw
truncate -s 8M disk.raw                                      # sparse raw file, all zeroes
PORT=$(free_port)
start_tcpdump session.pcap "tcp port $PORT"
# --discard=unmap: qemu-nbd's default (ignore) would acknowledge TRIM and do nothing
bg "$Q10/qemu-nbd" -f raw -b 127.0.0.1 -p "$PORT" --discard=unmap --trace 'nbd_*' disk.raw 2>qemu-nbd-trace.log
QEMU_NBD=$BG_PID
wait_port "$PORT"
# One qemu-io process, one connection; commands from qemu-io-commands.txt on stdin.  -t writeback:
# no implicit FUA on every write (qemu-io's default cache mode is writethrough).
"$Q10/qemu-io" -t writeback -f raw "nbd://127.0.0.1:$PORT" <qemu-io-commands.txt >"$TMPD/qemu-io.out" 2>&1 || true
# client.out: each "qemu-io> " prompt followed by the command it read; aio_* results are
# printed when the request completes, i.e. after later prompts.
/usr/bin/python3 - "$TMPD/qemu-io.out" qemu-io-commands.txt >client.out <<'PY'
import sys
out = open(sys.argv[1]).read().split("qemu-io> ")
cmds = [l.rstrip("\n") for l in open(sys.argv[2]) if l.strip()]
sys.stdout.write(out[0])
for i, chunk in enumerate(out[1:]):
    sys.stdout.write("qemu-io> %s\n%s" % (cmds[i] if i < len(cmds) else "(end of input)", chunk))
if not out[-1].endswith("\n"):
    sys.stdout.write("\n")
PY
for _ in $(seq 1 50); do kill -0 "$QEMU_NBD" 2>/dev/null || break; sleep 0.1; done   # exits after its client
stop_tcpdump session.pcap
stop_pid "$QEMU_NBD"
rm -f disk.raw
transcript "$PORT"
finish_readme ../count-log.py --qemu qemu-nbd-trace.log
