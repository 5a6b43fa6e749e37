#!/usr/bin/env bash
# Draws the benchmark plots from a results file (default: bench/results/latest.jsonl) with
# matplotlib from a private virtualenv under target/, created on first use.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/target/bench-venv"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "matplotlib>=3.8,<4"
fi
exec "$VENV/bin/python" "$ROOT/scripts/bench/plot.py" "${1:-$ROOT/bench/results/latest.jsonl}" "$ROOT/bench"
