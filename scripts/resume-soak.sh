#!/usr/bin/env bash
# The randomized resume convergence test for longer than CI runs it (default 120 s):
# 20 clients drop off and resume at random while 4 writers run on 3 groups.
set -euo pipefail
cd "$(dirname "$0")/.."
III_RESUME_SECONDS="${1:-120}" cargo test --release -p iii-stream --test resume \
  clients_that_drop_and_resume_at_random_converge -- --nocapture
