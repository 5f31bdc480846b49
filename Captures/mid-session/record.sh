#!/usr/bin/env bash
# Recreates this session: nbdsh -> nbdkit memory; tcpdump starts only while the client pauses after its first WRITE.
cd "$(dirname "$0")"
source ../lib.sh
rm -f session.pcap session*.nbdt README.md nbdkit.log nbdkit-debug.log libnbd-debug.log client.out
PORT=$(free_port)
bg nbdkit -f -v -i 127.0.0.1 -p "$PORT" --filter=log memory 1M logfile=nbdkit.log 2>nbdkit-debug.log
NBDKIT=$BG_PID
wait_port "$PORT"
READY="$TMPD/ready" GO="$TMPD/go"
NBD_URI="nbd://127.0.0.1:$PORT" READY_FILE="$READY" GO_FILE="$GO" LIBNBD_DEBUG=1 \
    bg nbdsh -c "exec(open('client.py').read())" >client.out 2>libnbd-debug.log
CLIENT=$BG_PID
for _ in $(seq 1 100); do [ -e "$READY" ] && break; sleep 0.1; done   # handshake + first WRITE done
[ -e "$READY" ] || { echo "client did not reach its pause" >&2; exit 1; }
start_tcpdump session.pcap "tcp port $PORT"                           # ~1.1 s; the client waits
touch "$GO"
wait "$CLIENT"
stop_tcpdump session.pcap
stop_pid "$NBDKIT"
REQUIRE_SYN=0 transcript "$PORT"                                      # no SYN in this capture, by design
finish_readme ../count-log.py nbdkit.log nbdkit-debug.log -- ./capture-window.py nbdkit.log session.pcap
