#!/usr/bin/env bash
# Recreates this session: nbdsh (simple replies, 4-64 KiB writes/reads) -> nbdkit memory over a 1500-byte-MTU
# loopback (private network namespace), then deletes chosen frames to simulate kernel drops.
cd "$(dirname "$0")"
# Own network namespace: its lo gets MTU 1500 and no GSO, so frames are Ethernet-sized (the host lo, MTU 64 KiB,
# carries a 64 KiB WRITE in one or two frames: no frame lies inside a payload).  Nothing outside is touched.
if [ -z "${NBDTAP_NETNS:-}" ]; then exec unshare -n env NBDTAP_NETNS=1 "$0" "$@"; fi
ip link set lo up mtu 1500
ip link set dev lo gso_max_segs 1
source ../lib.sh
rm -f session.pcap original.pcap session*.nbdt README.md nbdkit.log nbdkit-debug.log libnbd-debug.log client.out
PORT=$(free_port)
start_tcpdump original.pcap "tcp port $PORT"
bg nbdkit -f -v -i 127.0.0.1 -p "$PORT" --filter=log memory 4M logfile=nbdkit.log 2>nbdkit-debug.log
NBDKIT=$BG_PID
wait_port "$PORT"
NBD_URI="nbd://127.0.0.1:$PORT" LIBNBD_DEBUG=1 \
    nbdsh -c "exec(open('client.py').read())" >client.out 2>libnbd-debug.log
stop_tcpdump original.pcap
stop_pid "$NBDKIT"
# simulated drops: delete the frames chosen by pick-frames.py; what they carried goes into notes.md
# (between the "removed-frames" markers) and so into README.md
./pick-frames.py original.pcap "$PORT" nbdkit.log "$TMPD/frames" > "$TMPD/removed"
# shellcheck disable=SC2046
editcap -F pcap original.pcap session.pcap $(cat "$TMPD/frames")
{
    echo
    echo "What \`pcap-to-transcript.py\` says about the damaged \`session.pcap\` (transcript not kept):"
    echo
    echo '```'
    "$P2T" --port "$PORT" --summary -o "$TMPD/damaged.nbdt" session.pcap >"$TMPD/p2t" 2>&1 && rc=0 || rc=$?
    sed "s|$TMPD/||" "$TMPD/p2t"
    echo "(exit $rc)"
    echo '```'
} >> "$TMPD/removed"
cat "$TMPD/removed"
/usr/bin/python3 - "$TMPD/removed" <<'PY'
import re, sys
gen = open(sys.argv[1]).read()
s = open("notes.md").read()
s = re.sub(r"(<!-- removed-frames:begin[^\n]*-->\n).*?(<!-- removed-frames:end -->)",
           lambda m: m.group(1) + gen + m.group(2), s, flags=re.S)
open("notes.md", "w").write(s)
PY
TRANSCRIPT_PCAP=original.pcap transcript "$PORT"                     # session.nbdt = the complete streams
finish_readme ../count-log.py nbdkit.log nbdkit-debug.log
sed -i "/^\`session.pcap\`: /a \`original.pcap\`: $(stat -c %s original.pcap) bytes, $(tshark -r original.pcap 2>/dev/null | wc -l) frames; the transcript and the tshark check below are of \`original.pcap\`." README.md
