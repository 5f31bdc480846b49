#!/usr/bin/env bash
# Recreates this session: qemu-io 10 against nbdkit 1.32 (Debian 12) memory plugin + log filter: no extended
# headers on offer, so qemu 10 falls back to structured replies.
cd "$(dirname "$0")"
source ../lib.sh
Q10=$(bash "$REPO_DIR/scripts/peers" qemu10)
rm -f session.pcap session*.nbdt README.md nbdkit.log nbdkit-debug.log client.out
PORT=$(free_port)
start_tcpdump session.pcap "tcp port $PORT"
bg nbdkit -f -v -i 127.0.0.1 -p "$PORT" --filter=log memory 8M logfile=nbdkit.log 2>nbdkit-debug.log
NBDKIT=$BG_PID
wait_port "$PORT"
# The same qemu-io commands as ../qemu10-io-all (one connection, -t writeback: no implicit FUA).
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
stop_tcpdump session.pcap
stop_pid "$NBDKIT"
transcript "$PORT"
finish_readme ../count-log.py nbdkit.log nbdkit-debug.log
