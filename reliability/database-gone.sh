#!/usr/bin/env bash
# Reproduction (PostgreSQL): the connections of `flowkey upgrade head` are cut in the middle of
# the backfill (pg_terminate_backend, what a restart or failover does to a client).
#
#   bash reliability/database-gone.sh [FLOWKEY_BINARY]
#
# Expected (issue 6): exit non-zero with ONE line on stderr that says which step stopped and
# that a rerun resumes; the rerun completes. Exit 0 when the message is one line naming the
# step and the rerun completes, 1 otherwise. The CI test
# reliability::database_gone::connections_cut_during_the_backfill_... checks the parts that hold.
#
# Last result (2026-11-26, two runs): exit 1 (good), rerun completes and equals an uninterrupted run
# (good), but stderr is
#   <timestamp>  WARN error occurred while testing the connection on-release error=...
#   error: error returned from database: terminating connection due to administrator command: terminating connection due to administrator command
# (in the other run the step was named: "error: step \"backfill raw_import_records\" of revision
# \"flow_backfill\" failed: ..." -- which of the two depends on which pooled connection the
# audit write gets)
# i.e. two lines (sqlx WARN logs reach stderr at the default verbosity: src/main.rs
# init_tracing, "warn" should be "warn,sqlx=error"), the cause printed twice (`{err:#}` of a
# transparent sqlx::Error: src/main.rs one_line(format!("{err:#}"))), and no step named: in
# src/migrate/runner/steps.rs (run_revision, the `Err(err)` arm of the step loop) the
# `audit.finish(...).await?` of the failed step fails too on the dead pool and its error
# replaces the step's StepFailed error.
set -uo pipefail
cd "$(dirname "$0")/.."
flowkey="${1:-target/debug/flowkey}"
[ -x "$flowkey" ] || cargo build --quiet
admin="${FLOWKEY_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
name="flowkey_gone_$$"
url="${admin%/*}/$name"
psql -q "$admin" -c "CREATE DATABASE $name" || exit 1
trap 'psql -q "$admin" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)"' EXIT
"$flowkey" --database-url "$url" seed --tenants 3 --imports 20 --rows-per-import 100 --no-progress >/dev/null
err=$(mktemp)
"$flowkey" --database-url "$url" upgrade head --batch-target-ms 1 --no-progress >/dev/null 2>"$err" &
runner=$!
for _ in $(seq 1 6000); do
  steps=$(psql -qtA "$url" -c "SELECT steps_done FROM flowkey_versions WHERE revision = 'flow_backfill' AND dirty" 2>/dev/null)
  [ -n "$steps" ] && [ "$steps" -ge 1 ] && break
  sleep 0.02
done
psql -qtA "$url" -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()" >/dev/null
wait "$runner"; code=$?
echo "exit code after the cut: $code"
echo "stderr ($(wc -l <"$err") lines):"; cat "$err"
"$flowkey" --database-url "$url" upgrade head --no-progress >/dev/null 2>&1; rerun=$?
echo "rerun exit code: $rerun"
lines=$(wc -l <"$err")
[ "$code" -ne 0 ] && [ "$rerun" -eq 0 ] && [ "$lines" -eq 1 ] && grep -q "step" "$err" && exit 0
exit 1
