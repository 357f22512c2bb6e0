#!/usr/bin/env bash
# Runs the whole test suite: every database test on SQLite and on PostgreSQL. Starts a
# PostgreSQL server first if none answers (see ensure-postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWKEY_TEST_PG_URL=$(bash scripts/ensure-postgres.sh)
export FLOWKEY_TEST_PG_URL
# Databases left behind by a killed earlier run: the harness names them
# flowkey_test_<pid>_<n>_<random>; drop only those whose process is gone, so that test runs
# sharing one server (parallel jobs, several checkouts) never drop each other's databases.
psql "$FLOWKEY_TEST_PG_URL" -Atc "select datname from pg_database where datname like 'flowkey_test_%'" 2>/dev/null |
  while read -r name; do
    pid=$(echo "$name" | cut -d_ -f3)
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then continue; fi
    psql "$FLOWKEY_TEST_PG_URL" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
  done
# The fault injection points are compiled in for the tests only (see src/migrate/faults.rs).
cargo test --all-targets --features failpoints "$@"
# The Alembic bridge under real Alembic and SQLAlchemy (a throwaway venv from PyPI), on the
# platform-shaped database, on both engines; uses the binary the tests just built (with its
# fault points, for the interrupted run).
bash scripts/alembic-bridge-test.sh target/debug/flowkey
# The runnable PostgreSQL scripts (`--sql`) under squawk, the linter for PostgreSQL
# migrations (a pinned binary wheel from PyPI in a throwaway venv, seconds): any finding not
# excused, with its reason, in the script fails.
bash scripts/lint-sql.sh target/debug/flowkey
# The rollout drill (docs/rollout.md step by step while two old-code writers keep writing by
# session_id) on both engines, at a small size; uses the binary the tests just built.
FLOWKEY_BIN=target/debug/flowkey bash scripts/drill.sh sqlite 2000
FLOWKEY_BIN=target/debug/flowkey bash scripts/drill.sh postgres 2000
# The API under an outside fuzzer (schemathesis) on both engines, bounded in time; uses the
# binary the tests just built. FLOWKEY_SKIP_FUZZ=1 leaves it out of a local run.
if [[ -z "${FLOWKEY_SKIP_FUZZ:-}" ]]; then
  bash scripts/fuzz-api.sh target/debug/flowkey
fi
