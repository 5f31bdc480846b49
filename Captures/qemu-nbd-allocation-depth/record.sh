#!/usr/bin/env bash
# Recreates this session: qemu-nbd -A serving a sparse qcow2 with a backing file; nbdsh block status + reads.
cd "$(dirname "$0")"
source ../lib.sh
rm -f session.pcap session*.nbdt README.md qemu-nbd-trace.log libnbd-debug.log client.out base.qcow2 top.qcow2
# base: data at 0-64K (0x11) and 256K-320K (0x22); top (backing base): data at 64K-128K (0x33),
# a zero cluster at 512K-576K; everything else unallocated in both.
qemu-img create -q -f qcow2 base.qcow2 1M
qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 256k 64k' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 1M
qemu-io -f qcow2 -c 'write -P 0x33 64k 64k' -c 'write -z 512k 64k' top.qcow2 >/dev/null
{ echo "qemu-img map --output=json top.qcow2:"; qemu-img map --output=json -f qcow2 top.qcow2; } > image-map.txt
PORT=$(free_port)
start_tcpdump session.pcap "tcp port $PORT"
bg qemu-nbd -f qcow2 -b 127.0.0.1 -p "$PORT" -A --trace 'nbd_*' top.qcow2 2>qemu-nbd-trace.log
QEMU_NBD=$BG_PID
wait_port "$PORT"
NBD_URI="nbd://127.0.0.1:$PORT" LIBNBD_DEBUG=1 \
    nbdsh -c "exec(open('client.py').read())" >client.out 2>libnbd-debug.log
stop_tcpdump session.pcap
stop_pid "$QEMU_NBD"      # qemu-nbd without -t exits by itself after its client; this is a no-op then
rm -f base.qcow2 top.qcow2
transcript "$PORT"
finish_readme ../count-log.py --qemu qemu-nbd-trace.log
