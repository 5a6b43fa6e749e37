#!/usr/bin/env bash
# Runs N (default 100) kill -9 crash trials of the durable kv store against a release build:
# 32 concurrent writers doing set/update/delete, kill -9 after a random 50-500 ms, restart, and
# every acknowledged write must be there (crates/cli/tests/durability.rs). Prints the seed, one
# line per trial and a summary; exits non-zero on the first failed trial.
#
#   scripts/crash-trials.sh [N]          III_CRASH_SEED=<seed> replays a run
set -euo pipefail
trials="${1:-100}"
cd "$(dirname "$0")/.."
III_CRASH_TRIALS="$trials" exec cargo test --release -p iii-stream --test durability \
  crash_trials -- --nocapture --test-threads=1
