#!/usr/bin/env bash
# Recreates this session: nbd-server 3.24 exporting a 1 MiB file; nbdsh write/read/flush/trim/zero/error read.
cd "$(dirname "$0")"
source ../lib.sh
rm -f session.pcap session*.nbdt README.md nbd-server.cfg nbd-server-stderr.log transaction.log libnbd-debug.log client.out
DISK=$TMPD/disk.img
truncate -s 1M "$DISK"
PORT=$(free_port)
cat > nbd-server.cfg <<CFG
[generic]
    port = $PORT
    listenaddr = 127.0.0.1
    allowlist = true
[export1]
    exportname = $DISK
    flush = true
    fua = true
    trim = true
    transactionlog = $PWD/transaction.log
CFG
start_tcpdump session.pcap "tcp port $PORT"
bg nbd-server -C "$PWD/nbd-server.cfg" -d 2>nbd-server-stderr.log >&2
NBD_SERVER=$BG_PID
wait_port "$PORT"
NBD_URI="nbd://127.0.0.1:$PORT/export1" LIBNBD_DEBUG=1 \
    nbdsh -c "exec(open('client.py').read())" >client.out 2>libnbd-debug.log
stop_tcpdump session.pcap
stop_pid "$NBD_SERVER"
sed -i "s|$TMPD/disk.img|/tmp/.../disk.img|" nbd-server.cfg
transcript "$PORT"
finish_readme ../count-log.py --nbd-server transaction.log
