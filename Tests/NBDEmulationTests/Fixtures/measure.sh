#!/usr/bin/env bash
# Measures the peers the --emulate profiles copy: for each installed server, probe.py's raw
# answers (handshake flags, the final reply to every option, transmission flags with and
# without structured replies) plus what `nbdinfo --json` and libnbd's debug line report.
# Writes <peer>.json next to this script; ProfileMeasurementTests compares the profiles to them.
# Usage: ./measure.sh   (needs nbdkit, qemu-nbd, nbd-server, nbdinfo; starts and stops each by PID)
cd "$(dirname "$0")"
source ../../../Captures/lib.sh
HERE=$PWD

# record NAME URI EXPORT|--oldstyle COMMAND VERSION: one fixture from the server on $PORT.
record() {
    local name=$1 uri=$2 export=$3 command=$4 nbdinfo_json eflags_line probe_json
    probe_json=$(python3 "$HERE/probe.py" 127.0.0.1 "$PORT" "$export")
    nbdinfo_json=$(nbdinfo --json "$uri" 2>/dev/null || echo null)
    eflags_line=$(LIBNBD_DEBUG=1 nbdinfo --size "$uri" 2>&1 | grep -o 'eflags: 0x[0-9a-f]*' | head -1 || true)
    python3 - "$name" "$command" "$uri" "$eflags_line" "$probe_json" "$nbdinfo_json" "$5" > "$HERE/$name.json" <<'PY'
import json, sys
name, command, uri, eflags_line, probe, nbdinfo, version = sys.argv[1:]
print(json.dumps({
    "peer": name, "version": version, "server_command": command,
    "measured_by": ["Tests/NBDEmulationTests/Fixtures/measure.sh",
                    f"probe.py (raw sockets) against {uri}",
                    f"nbdinfo --json {uri}", f"LIBNBD_DEBUG=1 nbdinfo --size {uri}"],
    "libnbd_debug": eflags_line, "probe": json.loads(probe), "nbdinfo": json.loads(nbdinfo),
}, indent=2, sort_keys=True))
PY
    echo "$name: $(grep -o '"eflags_[a-z_]*": "0x[0-9a-f]*"' "$HERE/$name.json" | tr '\n' ' ') libnbd $eflags_line"
}

DISK=$TMPD/disk.img
truncate -s 1M "$DISK"

PORT=$(free_port)
bg nbdkit -f -i 127.0.0.1 -p "$PORT" memory 1M
wait_port "$PORT"
record nbdkit "nbd://127.0.0.1:$PORT/" "" "nbdkit -f -i 127.0.0.1 -p PORT memory 1M" "$(nbdkit --version)"
stop_pid "$BG_PID"

PORT=$(free_port)
bg nbdkit -f -o -i 127.0.0.1 -p "$PORT" memory 1M
wait_port "$PORT"
record nbdkit-oldstyle "nbd://127.0.0.1:$PORT/" --oldstyle "nbdkit -f -o -i 127.0.0.1 -p PORT memory 1M" "$(nbdkit --version)"
stop_pid "$BG_PID"

PORT=$(free_port)
bg qemu-nbd -t -f raw -b 127.0.0.1 -p "$PORT" "$DISK"
wait_port "$PORT"
record qemu-nbd "nbd://127.0.0.1:$PORT/" "" "qemu-nbd -t -f raw -b 127.0.0.1 -p PORT disk.img (1 MiB file)" "$(qemu-nbd --version | head -1)"
stop_pid "$BG_PID"

# Variants the docs and tests cite: what a read-only export hides, and qemu-nbd's
# MULTI_CONN, which depends on --shared.
PORT=$(free_port)
bg nbdkit -f -r -i 127.0.0.1 -p "$PORT" memory 1M
wait_port "$PORT"
record nbdkit-readonly "nbd://127.0.0.1:$PORT/" "" "nbdkit -f -r -i 127.0.0.1 -p PORT memory 1M" "$(nbdkit --version)"
stop_pid "$BG_PID"

PORT=$(free_port)
bg qemu-nbd -t -r -f raw -b 127.0.0.1 -p "$PORT" "$DISK"
wait_port "$PORT"
record qemu-nbd-readonly "nbd://127.0.0.1:$PORT/" "" "qemu-nbd -t -r -f raw -b 127.0.0.1 -p PORT disk.img (1 MiB file)" "$(qemu-nbd --version | head -1)"
stop_pid "$BG_PID"

PORT=$(free_port)
bg qemu-nbd -t -e 2 -f raw -b 127.0.0.1 -p "$PORT" "$DISK"
wait_port "$PORT"
record qemu-nbd-shared2 "nbd://127.0.0.1:$PORT/" "" "qemu-nbd -t -e 2 -f raw -b 127.0.0.1 -p PORT disk.img (1 MiB file)" "$(qemu-nbd --version | head -1)"
stop_pid "$BG_PID"

PORT=$(free_port)
cat > "$TMPD/nbd-server.cfg" <<CFG
[generic]
    port = $PORT
    listenaddr = 127.0.0.1
    allowlist = true
[export1]
    exportname = $DISK
    flush = true
    fua = true
    trim = true
CFG
# nbd-server cannot daemonize here ("Error: daemon"), and with -d (no fork) it exits after
# the first session that reaches transmission; the probe needs several, so a loop restarts it
# and probe.py retries a refused connection.
serve_nbd_server() {
    local child
    trap 'kill -TERM $child 2>/dev/null; wait $child 2>/dev/null; exit 0' TERM
    while true; do
        nbd-server -C "$TMPD/nbd-server.cfg" -d 2>/dev/null &
        child=$!
        wait $child || true
    done
}
bg serve_nbd_server
wait_port "$PORT"
record nbd-server "nbd://127.0.0.1:$PORT/export1" export1 "nbd-server -C nbd-server.cfg -d, restarted after each session (allowlist; export1 = 1 MiB file with flush, fua, trim = true, as Captures/nbd-server/record.sh)" "$(nbd-server -V 2>&1 | grep -m1 version)"
stop_pid "$BG_PID"
