#!/usr/bin/env bash
# Regenerates the figures of BENCHMARKS.md.
#
# Builds the release binary, starts the servers under test (kv in_memory and file_based) and the
# Redis reference, runs every `iii-stream bench` scenario with fixed parameters, appends one JSON
# line per result to bench/results/<stamp>.jsonl (also copied to bench/results/latest.jsonl), and
# draws the plots with scripts/bench/plot.py. Reference runs (Redis pub/sub, in_memory vs
# file_based) are made right next to the runs they are compared with, so that their ratios
# survive a noisy machine.
#
# Usage: scripts/bench/run-all.sh [--quick]
#   --quick   shorter runs and fewer points (a smoke test of the whole pipeline)
#
# Environment: SKIP_PLOT=1 to skip plotting. The Redis reference is a private redis-server
# (no persistence, maxclients raised) started on port 26379.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1
DURATION=8
[[ $QUICK == 1 ]] && DURATION=3

# The generator and the server each hold one descriptor per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)

cargo build --release -p iii-stream
WORK="$(mktemp -d /tmp/iii-bench.XXXXXX)"
# A private copy: a rebuild during the run must not swap the binary under the servers.
BIN="$WORK/iii-stream"
cp target/release/iii-stream "$BIN"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p bench/results
OUT="bench/results/$STAMP.jsonl"
LOG="bench/results/$STAMP.log"
: > "$OUT"

source "$(dirname "$0")/lib.sh"

# --- machine -------------------------------------------------------------------------------
{
    echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "kernel: $(uname -sr)"
    echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "loadavg_before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "open_files_limit: $FD_LIMIT"
    echo "somaxconn: $(cat /proc/sys/net/core/somaxconn)"
    echo "rustc: $(rustc --version)"
    echo "redis: $(redis-server --version 2>/dev/null | head -1 || echo none)"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
} > "bench/results/$STAMP.machine.txt"
cat "bench/results/$STAMP.machine.txt"

# --- servers -------------------------------------------------------------------------------
# Fixed ports below the ephemeral range, so that no client socket of another program holds them.

MEM_E=21134; MEM_S=21112
FILE_E=22134; FILE_S=22112
start_server MEM "$BIN" mem in_memory $MEM_E $MEM_S
start_server FILE "$BIN" file file_based $FILE_E $FILE_S

# A private Redis: a shared one may cap its clients below the 10,000 subscribers used here.
REDIS_HOST=127.0.0.1
REDIS_PORT=26379
redis-server --port $REDIS_PORT --bind 127.0.0.1 --save '' --appendonly no \
    --maxclients $(( FD_LIMIT - 100 )) > "$WORK/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 50); do
    redis-cli -p $REDIS_PORT ping > /dev/null 2>&1 && break
    sleep 0.1
done

# --- helpers -------------------------------------------------------------------------------
GEN=("$BIN")
run() { # label, then bench arguments; appends the JSON line, logs stderr
    local label=$1; shift
    echo "== $label: iii-stream bench $*" | tee -a "$LOG"
    if "${GEN[@]}" bench -q --label "$label" "$@" >> "$OUT" 2>> "$LOG"; then
        tail -n1 "$OUT" | cut -c1-220
    else
        echo "   (failed, see $LOG)" | tee -a "$LOG"
    fi
    # Let the server finish closing the previous run's connections.
    sleep 2
}
mem() { run "$1" --engine-port $MEM_E --stream-port $MEM_S --server-pid "$MEM" "${@:2}"; }
file() { run "$1" --engine-port $FILE_E --stream-port $FILE_S --server-pid "$FILE" "${@:2}"; }
redis() { run "$1" --server-pid "$REDIS_PID" redis-fanout --redis "$REDIS_HOST:$REDIS_PORT" "${@:2}"; }
last_field() { tail -n1 "$OUT" | jq -r ".$1 // empty"; }

# --- writes: in_memory vs file_based, same minute ------------------------------------------
for function in set update; do
    mem "writes-mem" writes -c 1 -w 64 --function $function --duration $DURATION
    file "writes-file" writes -c 1 -w 64 --function $function --duration $DURATION
done
mem "writes-mem" writes -c 4 -w 64 --function set --duration $DURATION
file "writes-file" writes -c 4 -w 64 --function set --duration $DURATION

# --- fan-out to 1,000 subscribers: maximum, then latency against offered rate ---------------
RATES="50 100 250 500 1000 2000"
[[ $QUICK == 1 ]] && RATES="100 500"
mem "fanout-max" fanout -n 1000 --duration $DURATION
BYTES=$(last_field bytes_per_delivery); BYTES=${BYTES:-250}
redis "redis-max" -n 1000 --duration $DURATION --payload-bytes "$BYTES"
for rate in $RATES; do
    mem "fanout-rate" fanout -n 1000 --rate "$rate" --duration $DURATION
    redis "redis-rate" -n 1000 --rate "$rate" --duration $DURATION --payload-bytes "$BYTES"
done

# --- deliveries/s against subscribers (maximum rate), each next to its Redis reference ------
SUBS="100 1000 3000 10000"
[[ $QUICK == 1 ]] && SUBS="100 2000"
for n in $SUBS; do
    mem "fanout-subs" fanout -n "$n" --duration $DURATION
    redis "redis-subs" -n "$n" --duration $DURATION --payload-bytes "$BYTES"
done

# --- 10,000 subscribers at 100 writes/s (1,000,000 deliveries/s offered) --------------------
N10K=10000; [[ $QUICK == 1 ]] && N10K=2000
mem "fanout-10k" fanout -n $N10K --rate 100 --duration $DURATION
redis "redis-10k" -n $N10K --rate 100 --duration $DURATION --payload-bytes "$BYTES"

# --- many groups: 1,000 subscribers on 100 groups -----------------------------------------
mem "fanout-groups" fanout -n 1000 -g 100 --duration $DURATION

# --- resume vs full sync after an outage ---------------------------------------------------
mem "resume" resume -n 1000 --rate 500 --down-ms 500 --mode since
mem "resume" resume -n 1000 --rate 500 --down-ms 500 --mode full
# A large group and a short outage: a replay of the few missed frames beats a full sync.
mem "resume-large" resume -n 1000 --rate 2000 --items 5000 --warm 3 --down-ms 100 --mode since
mem "resume-large" resume -n 1000 --rate 2000 --items 5000 --warm 3 --down-ms 100 --mode full

# --- join storm and idle memory: each on a freshly started server ---------------------------
stop_server "$MEM"
JOINS=10000; [[ $QUICK == 1 ]] && JOINS=3000
start_server FRESH "$BIN" fresh-join in_memory 23134 23112
run "joinstorm" --engine-port 23134 --stream-port 23112 --server-pid "$FRESH" joinstorm -n $JOINS -k 256
stop_server "$FRESH"
# The server keeps a few descriptors for itself: the most connections one process can hold.
IDLE_MAX=$(( FD_LIMIT - 100 ))
IDLE_SET="10000 $IDLE_MAX"
[[ $QUICK == 1 ]] && IDLE_SET="2000"
for n in $IDLE_SET; do
    start_server FRESH "$BIN" "fresh-idle-$n" in_memory 23134 23112
    run "idle" --engine-port 23134 --stream-port 23112 --server-pid "$FRESH" idle -n "$n"
    stop_server "$FRESH"
done

# --- pinned: server on CPU 0, generator on CPU 1 (no fight for cores) ------------------------
if [[ $(nproc) -ge 2 ]] && command -v taskset > /dev/null; then
    start_server PINNED "$BIN" pinned in_memory 24134 24112 0
    pinned() { run "$1" --engine-port 24134 --stream-port 24112 --server-pid "$PINNED" "${@:2}"; }
    GEN=(taskset -c 1 "$BIN")
    pinned "pinned-writes" writes -c 1 -w 64 --function set --duration $DURATION
    pinned "pinned-fanout-max" fanout -n 1000 --duration $DURATION
    pinned "pinned-fanout-rate" fanout -n 1000 --rate 250 --duration $DURATION
    pinned "pinned-fanout-10k" fanout -n $N10K --rate 100 --duration $DURATION
    GEN=("$BIN")
    stop_server "$PINNED"
fi

stop_server "$FILE"
echo "loadavg_after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "bench/results/$STAMP.machine.txt"
cp "$OUT" bench/results/latest.jsonl
cp "bench/results/$STAMP.machine.txt" bench/results/latest.machine.txt
echo "results: $OUT"

if [[ "${SKIP_PLOT:-0}" != 1 ]]; then
    "$ROOT/scripts/bench/plot.sh" "$OUT"
fi
