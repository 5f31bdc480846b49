#!/usr/bin/env bash
# Recreates this session: qemu-img convert of a half-sparse qcow2 into nbdkit memory.
cd "$(dirname "$0")"
source ../lib.sh
rm -f session.pcap session*.nbdt README.md nbdkit.log nbdkit-debug.log qemu-img.out counts.md src.raw src.qcow2
/usr/bin/python3 make-source.py
qemu-img convert -f raw -O qcow2 src.raw src.qcow2      # unwritten areas stay unallocated
{ echo "sha256 of the 16 MiB guest-visible content (src.raw):"; sha256sum src.raw
  echo "qemu-img map of src.qcow2:"; qemu-img map -f qcow2 src.qcow2
  qemu-img info -f qcow2 src.qcow2 | grep -v '^image:'; } > source-checksum.txt
PORT=$(free_port)
start_tcpdump session.pcap "tcp port $PORT"
bg nbdkit -f -v -i 127.0.0.1 -p "$PORT" --filter=log memory 16M logfile=nbdkit.log 2>nbdkit-debug.log
NBDKIT=$BG_PID
wait_port "$PORT"
qemu-img convert -n -f qcow2 -O raw src.qcow2 "nbd://127.0.0.1:$PORT" >qemu-img.out 2>&1
stop_tcpdump session.pcap
stop_pid "$NBDKIT"
rm -f src.raw src.qcow2                                  # regenerated deterministically
transcript "$PORT"
finish_readme ../count-log.py nbdkit.log nbdkit-debug.log
