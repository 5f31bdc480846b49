# Shared helpers for Captures/*/record.sh (source it; bash only).
# Every process started here is remembered by PID and stopped by PID.

set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH   # nbdsh/python3-libnbd need /usr/bin/python3
export LC_ALL=C

CAPTURES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$CAPTURES_DIR/.." && pwd)
P2T="$REPO_DIR/scripts/pcap-to-transcript.py"
STARTED_PIDS=()

# A free TCP port on 127.0.0.1 in 20000-60000 (not listening, not in use).
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$(( 20000 + RANDOM % 40000 ))
        if ! ss -Htan "( sport = :$p or dport = :$p )" | grep -q . &&
           /usr/bin/python3 -c "import socket,sys;s=socket.socket();s.bind(('127.0.0.1',$p));s.close()" 2>/dev/null; then
            echo "$p"; return 0
        fi
    done
    echo "no free port" >&2; return 1
}

# wait_port PORT: until something listens on 127.0.0.1:PORT (10 s max).
wait_port() {
    for _ in $(seq 1 100); do
        ss -Hltn "( sport = :$1 )" | grep -q . && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2; return 1
}

# bg CMD...: start CMD in the background, remember its PID in $BG_PID.
bg() {
    "$@" &
    BG_PID=$!
    STARTED_PIDS+=("$BG_PID")
}

# start_tcpdump FILE FILTER: capture on lo, complete on stop.
start_tcpdump() {
    tcpdump -i lo -U -B 262144 -s 0 --immediate-mode -w "$1" "$2" 2>"$1.tcpdump.err" &
    TCPDUMP_PID=$!
    STARTED_PIDS+=("$TCPDUMP_PID")
    sleep 1.2
}

stop_tcpdump() {
    sleep 1.2
    kill -INT "$TCPDUMP_PID" 2>/dev/null || true
    wait "$TCPDUMP_PID" 2>/dev/null || true
    cat "$1.tcpdump.err" >&2 || true
    rm -f "$1.tcpdump.err"
}

# stop_pid PID [SIGNAL]: stop one process we started and wait for it.
stop_pid() {
    kill -"${2:-TERM}" "$1" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

cleanup_all() {
    local p
    for p in "${STARTED_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && { kill -TERM "$p" 2>/dev/null || true; }
    done
    sleep 0.3
    for p in "${STARTED_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && { kill -KILL "$p" 2>/dev/null || true; }
    done
    return 0
}
trap cleanup_all EXIT

# versions FILE: tool versions for the README.
versions() {
    {
        echo "nbdkit: $(nbdkit --version | head -1)"
        echo "nbdsh: $(nbdsh --version | tr '\n' ' ')"
        echo "qemu-img: $(qemu-img --version | head -1)"
        echo "qemu-nbd: $(qemu-nbd --version | head -1)"
        echo "nbd-server: $(nbd-server -V 2>&1 | grep -m1 version)"
        echo "tcpdump: $(tcpdump --version 2>&1 | head -1)"
        echo "tshark: $(tshark --version | head -1)"
        echo "kernel: $(uname -r)"
    } > "$1"
}
