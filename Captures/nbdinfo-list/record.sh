#!/usr/bin/env bash
# Recreates this session: nbdinfo --list, --map and --json against nbdkit data + exportname + log filters.
cd "$(dirname "$0")"
source ../lib.sh
rm -f session.pcap session*.nbdt README.md nbdkit.log nbdkit-debug.log libnbd-debug.log nbdinfo-*.out
PORT=$(free_port)
start_tcpdump session.pcap "tcp port $PORT"
bg nbdkit -f -v -i 127.0.0.1 -p "$PORT" --filter=log --filter=exportname \
    data '@0x10000 ( 0x55 )*4096 @0x80000 ( 0xaa )*65536' size=1M \
    exportname=disk1 exportname=disk2 exportname-list=explicit exportdesc=fixed:"test disk" \
    logfile=nbdkit.log 2>nbdkit-debug.log
NBDKIT=$BG_PID
wait_port "$PORT"
LIBNBD_DEBUG=1 nbdinfo --list "nbd://127.0.0.1:$PORT"       >nbdinfo-list.out 2>libnbd-debug.log
LIBNBD_DEBUG=1 nbdinfo --map "nbd://127.0.0.1:$PORT/disk1"  >nbdinfo-map.out  2>>libnbd-debug.log
LIBNBD_DEBUG=1 nbdinfo --json "nbd://127.0.0.1:$PORT/disk2" >nbdinfo-json.out 2>>libnbd-debug.log
stop_tcpdump session.pcap
stop_pid "$NBDKIT"
transcript "$PORT"
finish_readme ../count-log.py nbdkit.log nbdkit-debug.log
