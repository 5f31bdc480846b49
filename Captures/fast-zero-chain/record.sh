#!/usr/bin/env bash
# Recreates this session: nbdsh -> qemu-nbd (proxy, TCP) -> nbdkit log+nozero(slow fast zero); fast zeroes.
cd "$(dirname "$0")"
source ../lib.sh
rm -f session.pcap session*.nbdt README.md nbdkit.log nbdkit-debug.log qemu-nbd-trace.log libnbd-debug.log client.out
UP=$(free_port)
PX=$(free_port)
while [ "$PX" = "$UP" ]; do PX=$(free_port); done
start_tcpdump session.pcap "tcp port $PX or tcp port $UP"
bg nbdkit -f -v -i 127.0.0.1 -p "$UP" --filter=log --filter=nozero memory 1M zeromode=plugin fastzeromode=slow \
    logfile=nbdkit.log 2>nbdkit-debug.log
NBDKIT=$BG_PID
wait_port "$UP"
bg qemu-nbd -f raw -b 127.0.0.1 -p "$PX" --trace 'nbd_*' "nbd://127.0.0.1:$UP" 2>qemu-nbd-trace.log
QEMU_NBD=$BG_PID
wait_port "$PX"
NBD_URI="nbd://127.0.0.1:$PX" LIBNBD_DEBUG=1 \
    nbdsh -c "exec(open('client.py').read())" >client.out 2>libnbd-debug.log
for _ in $(seq 1 50); do kill -0 "$QEMU_NBD" 2>/dev/null || break; sleep 0.1; done   # exits after its client
stop_tcpdump session.pcap
stop_pid "$QEMU_NBD"
stop_pid "$NBDKIT"
echo "client port $PX (qemu-nbd), upstream port $UP (nbdkit)" > ports.txt
transcript "$PX:client" "$UP:upstream"
finish_readme ../count-log.py nbdkit.log nbdkit-debug.log -- ../count-log.py --qemu qemu-nbd-trace.log
