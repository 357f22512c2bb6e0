#!/usr/bin/env bash
# Runs the whole test suite: every database test on SQLite and on PostgreSQL. Starts a
# PostgreSQL server first if none answers (see ensure-postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWKEY_TEST_PG_URL=$(bash scripts/ensure-postgres.sh)
export FLOWKEY_TEST_PG_URL
# Databases left behind by a killed earlier run.
psql "$FLOWKEY_TEST_PG_URL" -Atc "select datname from pg_database where datname like 'flowkey_test_%'" 2>/dev/null |
  while read -r name; do psql "$FLOWKEY_TEST_PG_URL" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true; done
cargo test --all-targets "$@"
