#!/usr/bin/env bash
# Recreates this session: nbdkit log + error filters (EIO at 50%), nbdsh reads/writes that fail at random.
cd "$(dirname "$0")"
source ../lib.sh
rm -f session.pcap session*.nbdt README.md nbdkit.log nbdkit-debug.log libnbd-debug.log client.out
PORT=$(free_port)
start_tcpdump session.pcap "tcp port $PORT"
bg nbdkit -f -v -i 127.0.0.1 -p "$PORT" --filter=log --filter=error memory 1M error=EIO error-rate=50% \
    logfile=nbdkit.log 2>nbdkit-debug.log
NBDKIT=$BG_PID
wait_port "$PORT"
NBD_URI="nbd://127.0.0.1:$PORT" LIBNBD_DEBUG=1 \
    nbdsh -c "exec(open('client.py').read())" >client.out 2>libnbd-debug.log
stop_tcpdump session.pcap
stop_pid "$NBDKIT"
transcript "$PORT"
finish_readme ../count-log.py nbdkit.log nbdkit-debug.log
