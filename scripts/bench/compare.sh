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

source "$(dirname "$0")/lib.sh"

bench() { # label engine_port stream_port pid, then scenario arguments
    local label=$1 eport=$2 sport=$3 pid=$4
    shift 4
    echo "== $label: $*"
    "$GEN" bench -q --label "$label" --engine-port "$eport" --stream-port "$sport" \
        --server-pid "$pid" "$@" >> "$OUT" || echo "   (failed)"
    tail -n1 "$OUT" | cut -c1-200
    sleep 2
}

start_server BEFORE "$WORK/before" before-25112 in_memory 25134 25112
start_server AFTER "$WORK/after" after-26112 in_memory 26134 26112
for round in $(seq "$ROUNDS"); do
    for which in before after; do
        if [[ $which == before ]]; then e=25134 s=25112 p=$BEFORE; else e=26134 s=26112 p=$AFTER; fi
        bench "$which" $e $s "$p" writes -c 1 -w 64 --duration 5
        bench "$which" $e $s "$p" fanout -n 1000 --duration 5
        bench "$which" $e $s "$p" fanout -n 1000 --rate 500 --duration 5
        bench "$which" $e $s "$p" fanout -n 10000 --rate 100 --duration 5
    done
done
stop_server "$BEFORE"
stop_server "$AFTER"
for round in $(seq "$ROUNDS"); do
    for which in before after; do
        start_server FRESH "$WORK/$which" "$which-27112" in_memory 27134 27112
        bench "$which" 27134 27112 "$FRESH" joinstorm -n 10000 -k 256
        stop_server "$FRESH"
        start_server FRESH "$WORK/$which" "$which-27112" in_memory 27134 27112
        bench "$which" 27134 27112 "$FRESH" idle -n 10000
        stop_server "$FRESH"
    done
done
echo "results: $OUT"
python3 "$ROOT/scripts/bench/compare_table.py" "$OUT"
