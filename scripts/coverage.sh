#!/usr/bin/env bash
# Measures line coverage with cargo-tarpaulin (LLVM source-based instrumentation; needs no
# extra toolchain component) over the unit tests and the integration suite, every database
# test on SQLite and on PostgreSQL. Not run by CI: it rebuilds everything instrumented in
# target/tarpaulin (the first run takes long) and runs the suite slower than `cargo test`.
#
#   scripts/coverage.sh                 # whole suite -> target/coverage/{lcov.info,tarpaulin-report.json}
#   scripts/coverage.sh -- coverage_    # extra arguments go to the test binaries (a filter)
#
# Then prints the overall figure, the migration code's figure per file and every uncovered
# line of src/migrate/** and src/db/introspect.rs (scripts/coverage_summary.py; several lcov
# files given to it are merged, a line counting as covered if any run hit it).
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWKEY_TEST_PG_URL=$(bash scripts/ensure-postgres.sh)
export FLOWKEY_TEST_PG_URL
OUT=${COVERAGE_OUT:-target/coverage}
TEST_ARGS=()
if [[ "${1:-}" == "--" ]]; then
  shift
  TEST_ARGS=("$@")
fi
# The flowkey binary is listed as an object so that library code run by the CLI tests in a
# child process (assert_cmd) counts too.
cargo tarpaulin \
  --engine llvm \
  --lib --test it \
  --skip-clean --no-fail-fast \
  --target-dir target/tarpaulin \
  --timeout 3600 \
  --exclude-files 'tests/*' --exclude-files 'benches/*' \
  --objects target/tarpaulin/debug/flowkey \
  --out Json --out Lcov --output-dir "$OUT" \
  -- --test-threads 2 "${TEST_ARGS[@]}"
python3 scripts/coverage_summary.py --uncovered "$OUT/lcov.info"
