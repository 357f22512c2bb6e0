#!/usr/bin/env bash
# Line coverage of the migration code (src/migrate/** and src/db/introspect.rs) with
# cargo-llvm-cov (LLVM source-based coverage), over the tests that exercise it: the unit tests
# and the whole integration suite (the http and service folders reach the schema gate, the
# readiness record and the live mapping's catch-up in src/migrate), with the fault
# injection points compiled in (--features failpoints), every database test on SQLite and on
# PostgreSQL. Fails when the migration code's figure is below scripts/coverage-floor.txt.
#
#   scripts/coverage.sh                     # -> target/coverage/lcov.info, figures, uncovered lines
#   scripts/coverage.sh migrate::runner     # integration tests matching these filters instead
#   COVERAGE_OUT=dir scripts/coverage.sh    # another output directory
#   COVERAGE_NO_FLOOR=1 scripts/coverage.sh # report without failing (a filtered run is partial)
#
# The instrumented build lives in target/llvm-cov-target (cargo-llvm-cov's own target dir),
# so it never invalidates target/debug. The CLI tests run the `flowkey` binary that cargo
# built for the tests: cargo-llvm-cov instruments it too and sets LLVM_PROFILE_FILE for the
# whole run, so every child process writes its profile and the binary counts in the report.
set -euo pipefail
cd "$(dirname "$0")/.."

LLVM_COV_VERSION=0.9.1
if ! cargo llvm-cov --version 2>/dev/null | grep -qx "cargo-llvm-cov $LLVM_COV_VERSION"; then
  echo "== installing cargo-llvm-cov $LLVM_COV_VERSION"
  cargo install cargo-llvm-cov --version "$LLVM_COV_VERSION" --locked
fi
# llvm-profdata and llvm-cov come from the toolchain's llvm-tools component
# (rust-toolchain.toml lists it; rustup installs it if missing).
rustup component add llvm-tools >/dev/null 2>&1 || true

FLOWKEY_TEST_PG_URL=$(bash scripts/ensure-postgres.sh)
export FLOWKEY_TEST_PG_URL
OUT=${COVERAGE_OUT:-target/coverage}
mkdir -p "$OUT"
FILTERS=("$@")

# Profiles of an earlier run would be merged into this one; the build is kept.
cargo llvm-cov clean --profraw-only
# A failing test fails the script, after the report (which is still worth reading).
tests_failed=0
cargo llvm-cov --no-report --locked --features failpoints --lib -- --test-threads 2 || tests_failed=1
cargo llvm-cov --no-report --locked --features failpoints --test it --no-fail-fast \
  -- --test-threads 2 ${FILTERS[@]+"${FILTERS[@]}"} || tests_failed=1
cargo llvm-cov report --lcov --output-path "$OUT/lcov.info"

FLOOR=()
if [[ -z "${COVERAGE_NO_FLOOR:-}" ]]; then
  FLOOR=(--floor scripts/coverage-floor.txt)
fi
python3 scripts/coverage_summary.py --uncovered "${FLOOR[@]}" "$OUT/lcov.info"
if [[ $tests_failed -ne 0 ]]; then
  echo "coverage: some tests failed (see above); the figures miss what they would have run" >&2
  exit 1
fi
