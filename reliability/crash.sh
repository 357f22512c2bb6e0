#!/usr/bin/env bash
# Crash anywhere, long version: `flowkey upgrade head` and `flowkey downgrade legacy` killed
# with SIGKILL at FLOWKEY_KILL_POINTS random moments per engine (default 50), each rerun to
# completion and compared with an uninterrupted run (schema, fingerprints, every flow_id).
#
#   bash reliability/crash.sh [KILL_POINTS] [SEED]
#
# Needs the PostgreSQL server of the test suite (FLOWKEY_TEST_PG_URL). Prints one
# "RELIABILITY crash ..." line per engine (kill points, where they landed) and exits non-zero
# on any difference. The last result is recorded in docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export FLOWKEY_KILL_POINTS="${1:-50}"
if [ -n "${2:-}" ]; then export FLOWKEY_RELIABILITY_SEED="$2"; fi
started=$(date +%s)
cargo test --test it reliability::crash -- --nocapture --test-threads=1 2>&1 |
  tee /tmp/flowkey-crash.log | grep -E "RELIABILITY|panicked|test result|FAILED" || true
status=${PIPESTATUS[0]}
echo "elapsed: $(( $(date +%s) - started )) s"
exit "$status"
