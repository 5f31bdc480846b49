#!/usr/bin/env bash
# Recreates this session: nbdcopy --connections=4 of a sparse 512 MiB file (512 KiB of data) into nbdkit memory.
cd "$(dirname "$0")"
source ../lib.sh
rm -f session.pcap session*.nbdt README.md nbdkit.log nbdkit-debug.log nbdcopy.out src.raw
/usr/bin/python3 make-source.py
{ echo "sha256 of src.raw (512 MiB, sparse):"; sha256sum src.raw
  echo "allocated extents of src.raw (SEEK_DATA/SEEK_HOLE, as nbdcopy sees them):"
  /usr/bin/python3 -c '
import os
fd = os.open("src.raw", os.O_RDONLY); end = os.fstat(fd).st_size; off = 0
while off < end:
    try: d = os.lseek(fd, off, os.SEEK_DATA)
    except OSError: break
    h = os.lseek(fd, d, os.SEEK_HOLE); print("data", hex(d), hex(h - d)); off = h'
} > source-checksum.txt
PORT=$(free_port)
start_tcpdump session.pcap "tcp port $PORT"
bg nbdkit -f -v -i 127.0.0.1 -p "$PORT" --filter=log memory 512M logfile=nbdkit.log 2>nbdkit-debug.log
NBDKIT=$BG_PID
wait_port "$PORT"
nbdcopy --connections=4 --threads=4 --request-size=33554432 --flush src.raw "nbd://127.0.0.1:$PORT" >nbdcopy.out 2>&1
stop_tcpdump session.pcap
stop_pid "$NBDKIT"
rm -f src.raw                                            # regenerated deterministically
transcript "$PORT"
finish_readme ../count-log.py nbdkit.log nbdkit-debug.log
