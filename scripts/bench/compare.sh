#!/usr/bin/env bash
# Before/after comparison of two server binaries in the same minutes.
#
# Starts both binaries side by side (kv in_memory) and runs each scenario alternately against
# one and the other, ROUNDS times, so that a noisy machine affects both alike. Idle memory and
# the join storm run against freshly started servers. Results go to
# bench/results/compare-<stamp>.jsonl, labelled `before` and `after`; the generator is the
# `after` binary's `bench` command.
#
# Usage: scripts/bench/compare.sh BEFORE_BINARY AFTER_BINARY [ROUNDS]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
[[ $# -ge 2 ]] || { echo "usage: $0 BEFORE_BINARY AFTER_BINARY [ROUNDS]" >&2; exit 2; }
ROUNDS=${3:-3}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK="$(mktemp -d /tmp/iii-compare.XXXXXX)"
cp "$1" "$WORK/before"
cp "$2" "$WORK/after"
GEN="$WORK/after"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p bench/results
OUT="bench/results/compare-$STAMP.jsonl"
: > "$OUT"

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

start() { # result_var which engine_port stream_port
    local var=$1 which=$2 eport=$3 sport=$4
    local dir="$WORK/$which-$sport"
    mkdir -p "$dir"
    cat > "$dir/config.yaml" <<EOF
workers:
  - name: iii-worker-manager
    config: { host: 127.0.0.1, port: $eport }
  - name: iii-stream
    config:
      host: 127.0.0.1
      port: $sport
      adapter: { name: kv, config: { store_method: in_memory } }
      limits: { max_connections: 30000 }
EOF
    "$WORK/$which" serve -c "$dir/config.yaml" > "$dir/server.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$sport/healthz" > /dev/null 2>&1 && break
        sleep 0.1
    done
    printf -v "$var" '%s' "$pid"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

bench() { # label engine_port stream_port pid, then scenario arguments
    local label=$1 eport=$2 sport=$3 pid=$4
    shift 4
    echo "== $label: $*"
    "$GEN" bench -q --label "$label" --engine-port "$eport" --stream-port "$sport" \
        --server-pid "$pid" "$@" >> "$OUT" || echo "   (failed)"
    tail -n1 "$OUT" | cut -c1-200
    sleep 2
}

start BEFORE before 25134 25112
start AFTER after 26134 26112
for round in $(seq "$ROUNDS"); do
    for which in before after; do
        if [[ $which == before ]]; then e=25134 s=25112 p=$BEFORE; else e=26134 s=26112 p=$AFTER; fi
        bench "$which" $e $s "$p" writes -c 1 -w 64 --duration 5
        bench "$which" $e $s "$p" fanout -n 1000 --duration 5
        bench "$which" $e $s "$p" fanout -n 1000 --rate 500 --duration 5
        bench "$which" $e $s "$p" fanout -n 10000 --rate 100 --duration 5
    done
done
stop "$BEFORE"
stop "$AFTER"
for round in $(seq "$ROUNDS"); do
    for which in before after; do
        start FRESH "$which" 27134 27112
        bench "$which" 27134 27112 "$FRESH" joinstorm -n 10000 -k 256
        stop "$FRESH"
        start FRESH "$which" 27134 27112
        bench "$which" 27134 27112 "$FRESH" idle -n 10000
        stop "$FRESH"
    done
done
echo "results: $OUT"
python3 "$ROOT/scripts/bench/compare_table.py" "$OUT"
