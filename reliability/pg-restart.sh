#!/usr/bin/env bash
# PostgreSQL restarted for real, long version: a private throwaway cluster (initdb in a temp
# directory, its own port; the shared test server is never touched) is stopped and started
# FLOWKEY_PG_RESTARTS times (default 30) in each of the two scenarios of
# tests/it/reliability/pg_restart.rs:
#   - under `flowkey upgrade head` (clean `-m fast` and crash-like `-m immediate` stops at
#     random moments, seeded: FLOWKEY_RELIABILITY_SEED), each cycle rerun to completion and
#     compared with an uninterrupted run, then downgraded to legacy and compared with the
#     seeded original;
#   - under a running `flowkey serve` with a client load (alternately a 6.5 s clean outage
#     and a 0.5 s crash-like one): 503 while down, 2xx again without a server restart.
#
#   bash reliability/pg-restart.sh [RESTARTS] [SEED]
#
# Needs the PostgreSQL binaries (initdb, pg_ctl; scripts/ensure-postgres.sh installs them).
# Prints the "RELIABILITY pg-restart ..." lines (every restart: where it landed and how the
# run ended; every outage: refusals, waits, recovery) and exits non-zero on any failure. The
# last result is recorded in docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export FLOWKEY_PG_RESTARTS="${1:-30}"
if [ -n "${2:-}" ]; then export FLOWKEY_RELIABILITY_SEED="$2"; fi
started=$(date +%s)
cargo test --test it reliability::pg_restart -- --nocapture --test-threads=1 2>&1 |
  tee /tmp/flowkey-pg-restart.log | grep -E "RELIABILITY|panicked|test result|FAILED" || true
status=${PIPESTATUS[0]}
echo "elapsed: $(( $(date +%s) - started )) s"
exit "$status"
