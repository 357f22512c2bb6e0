#!/usr/bin/env bash
# Sustained mixed load, long version: `flowkey serve` (the built binary, on loopback) on a
# seeded database at head, FLOWKEY_LOAD_REQUESTS requests (default 50000) of a mix of v3 and
# v1 reads and imports from 8 concurrent clients, on SQLite and PostgreSQL. Prints one
# "RELIABILITY load ..." line per engine: requests, rate, errors, latency p50/p99/max, and the
# server's resident memory after warm-up, half way and at the end. Exits non-zero on any
# error or on memory that keeps growing.
#
#   bash reliability/load.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
export FLOWKEY_LOAD_REQUESTS="${1:-50000}"
started=$(date +%s)
cargo test --test it a_sustained_mixed_load -- --nocapture --test-threads=1 2>&1 |
  tee /tmp/flowkey-load.log | grep -E "RELIABILITY|panicked|test result|FAILED" || true
status=${PIPESTATUS[0]}
echo "elapsed: $(( $(date +%s) - started )) s"
exit "$status"
