#!/usr/bin/env bash
# Recreates this session: nbdkit memory plugin + log filter, nbdsh doing every command without structured replies.
cd "$(dirname "$0")"
source ../lib.sh
NAME=$(basename "$PWD")
rm -f session.pcap session*.nbdt README.md nbdkit.log nbdkit-debug.log libnbd-debug.log client.out counts.md
PORT=$(free_port)
start_tcpdump session.pcap "tcp port $PORT"
bg nbdkit -f -v -i 127.0.0.1 -p "$PORT" --filter=log memory 1M logfile=nbdkit.log 2>nbdkit-debug.log
NBDKIT=$BG_PID
wait_port "$PORT"
NBD_URI="nbd://127.0.0.1:$PORT" STRUCTURED=0 LIBNBD_DEBUG=1 \
    nbdsh -c "exec(open('client.py').read())" >client.out 2>libnbd-debug.log
stop_tcpdump session.pcap
stop_pid "$NBDKIT"
transcript "$PORT"
finish_readme ../count-log.py nbdkit.log nbdkit-debug.log
