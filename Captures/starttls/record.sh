#!/usr/bin/env bash
# Recreates this session: nbdkit --tls=require with a PSK file, memory + log filter; nbdsh over TLS (write, read, flush).
cd "$(dirname "$0")"
source ../lib.sh
rm -f session.pcap session*.nbdt README.md nbdkit.log nbdkit-debug.log libnbd-debug.log client.out
# A fixed test-only pre-shared key (username:hexkey, the psktool format); TLS 1.3 PSK with (EC)DHE
# key exchange, so this key alone does not decrypt the capture.
printf 'alice:%s\n' 4e4244544150207465737420505348206b6579206f6e6c792c206e6f74207365 > keys.psk
chmod 600 keys.psk
PORT=$(free_port)
start_tcpdump session.pcap "tcp port $PORT"
bg nbdkit -f -v -i 127.0.0.1 -p "$PORT" --tls=require --tls-psk="$PWD/keys.psk" \
    --filter=log memory 1M logfile=nbdkit.log 2>nbdkit-debug.log
NBDKIT=$BG_PID
wait_port "$PORT"
NBD_PORT="$PORT" PSK_FILE="$PWD/keys.psk" LIBNBD_DEBUG=1 \
    nbdsh -c "exec(open('client.py').read())" >client.out 2>libnbd-debug.log
stop_tcpdump session.pcap
stop_pid "$NBDKIT"
transcript "$PORT"
finish_readme ../count-log.py nbdkit.log nbdkit-debug.log
