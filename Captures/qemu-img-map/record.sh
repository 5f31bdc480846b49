#!/usr/bin/env bash
# Recreates this session: qemu-img map (JSON, then human output) of an nbdkit data export with data and holes.
cd "$(dirname "$0")"
source ../lib.sh
rm -f session.pcap session*.nbdt README.md nbdkit.log nbdkit-debug.log qemu-img-map*.out
PORT=$(free_port)
start_tcpdump session.pcap "tcp port $PORT"
bg nbdkit -f -v -i 127.0.0.1 -p "$PORT" --filter=log \
    data '( 0x11 )*4096 @0x10000 ( 0x22 )*32768 @0x100000 ( 0x33 )*65536 @0x380000 ( 0x44 )*4096 @0x3ff000 ( 0x55 )*4096' \
    size=4M logfile=nbdkit.log 2>nbdkit-debug.log
NBDKIT=$BG_PID
wait_port "$PORT"
qemu-img map -f raw --output=json "nbd://127.0.0.1:$PORT" >qemu-img-map-json.out 2>&1
qemu-img map -f raw "nbd://127.0.0.1:$PORT"               >qemu-img-map-human.out 2>&1
stop_tcpdump session.pcap
stop_pid "$NBDKIT"
transcript "$PORT"
finish_readme ../count-log.py nbdkit.log nbdkit-debug.log
