#!/usr/bin/env bash
# Measures line coverage with cargo-tarpaulin's LLVM engine (source-based instrumentation,
# read by tarpaulin itself: no llvm-tools component needed) over the unit tests and the
# integration suite, every database test on SQLite and on PostgreSQL. Not run by CI.
#
#   scripts/coverage.sh                  # whole suite -> target/coverage/{lcov.info,tarpaulin-report.json}
#   scripts/coverage.sh -- coverage_     # arguments after -- go to the test binaries (a filter)
#   COVERAGE_OUT=dir scripts/coverage.sh # another output directory
#   COVERAGE_FULL_BUILD=1 scripts/coverage.sh
#
# By default only flowkey's own crates are instrumented: cargo runs them through a
# RUSTC_WORKSPACE_WRAPPER that adds -Cinstrument-coverage -Clink-dead-code, and tarpaulin's
# RUSTFLAGS are dropped, so the dependencies already compiled in target/debug are reused
# (tarpaulin's own way rebuilds every dependency instrumented in target/tarpaulin, which
# takes very long on a small machine). Coverage of dependencies is not wanted anyway. The
# flowkey crates in target/debug are left instrumented; the next `cargo test` rebuilds them.
# COVERAGE_FULL_BUILD=1 uses tarpaulin's standard build instead (same figures, slower).
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
TARGET_DIR=target/tarpaulin
if [[ -z "${COVERAGE_FULL_BUILD:-}" ]]; then
  TARGET_DIR=target
  WRAPPERS=$(mktemp -d)
  trap 'rm -rf "$WRAPPERS"' EXIT
  REAL_CARGO=$(command -v cargo)
  cat >"$WRAPPERS/rustc-instrumented" <<'WRAPPER'
#!/usr/bin/env bash
rustc="$1"; shift
for arg in "$@"; do
  if [[ "$arg" == "--crate-name" ]]; then
    exec "$rustc" "$@" -Cinstrument-coverage -Clink-dead-code -Cdebuginfo=2 -Cstrip=none
  fi
done
exec "$rustc" "$@"
WRAPPER
  cat >"$WRAPPERS/cargo" <<WRAPPER
#!/usr/bin/env bash
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS RUSTDOCFLAGS CARGO_ENCODED_RUSTDOCFLAGS
export RUSTC_WORKSPACE_WRAPPER="$WRAPPERS/rustc-instrumented"
exec "$REAL_CARGO" "\$@"
WRAPPER
  chmod +x "$WRAPPERS/cargo" "$WRAPPERS/rustc-instrumented"
  export PATH="$WRAPPERS:$PATH"
fi
# The flowkey binary is listed as an object: the CLI tests run it as a child process.
cargo-tarpaulin tarpaulin \
  --engine llvm \
  --lib --test it \
  --skip-clean --no-fail-fast \
  --target-dir "$TARGET_DIR" \
  --timeout 3600 \
  --exclude-files 'tests/*' --exclude-files 'benches/*' \
  --objects "$TARGET_DIR/debug/flowkey" \
  --out Json --out Lcov --output-dir "$OUT" \
  -- --test-threads 2 "${TEST_ARGS[@]}"
python3 scripts/coverage_summary.py --uncovered "$OUT/lcov.info"
