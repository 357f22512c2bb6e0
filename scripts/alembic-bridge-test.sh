#!/usr/bin/env bash
# The Alembic bridge (`flowkey alembic-revision`) under real Alembic and SQLAlchemy, installed
# into a throwaway virtual environment, on the platform-shaped database of ../shared (legacy +
# platform), on PostgreSQL (in the platform's `migration` schema, reached through search_path,
# and in `public`) and on SQLite. Per case: the bridge chains after the platform's head; a run
# interrupted inside flowkey fails Alembic with flowkey's own error and moves neither book;
# rerunning the same command resumes it (alembic current = the bridge, flowkey current = head);
# autogenerate proposes nothing about flowkey's objects with the filter (and proposes to drop
# them without it); `alembic downgrade -1` takes flowkey back to legacy and the database equals
# its pristine copy; offline `--sql` prints flowkey's script.
# Usage: scripts/alembic-bridge-test.sh [FLOWKEY_BINARY built with --features failpoints]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
flowkey=$(realpath "${1:-target/debug/flowkey}")
shared=$(realpath "${FLOWKEY_SHARED_DIR:-../shared}")
pg_url=${FLOWKEY_TEST_PG_URL:-$(bash scripts/ensure-postgres.sh)}
pg_server=${pg_url%/*}
work=$(mktemp -d)
databases=()
cleanup() {
  for db in "${databases[@]}"; do
    psql "$pg_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
say() { echo "alembic-bridge: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

say "installing Alembic and SQLAlchemy into a throwaway virtual environment"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check \
  'alembic==1.20.1' 'SQLAlchemy==2.1.9' 'psycopg2-binary==2.9.13' >&2
python="$work/venv/bin/python"

case_number=0
run_case() { # engine (postgres|sqlite) schema
  local engine=$1 schema=$2
  case_number=$((case_number + 1))
  local project="$work/case$case_number"
  cp -r "$root/tests/alembic/project" "$project"
  "$flowkey" alembic-filter > "$project/flowkey_alembic_filter.py"
  local url pristine flowkey_url
  if [[ $engine == postgres ]]; then
    local db="flowkey_alembic_$$_$case_number" pristine_db="flowkey_alembic_$$_${case_number}_pristine"
    databases+=("$db" "$pristine_db")
    for name in "$db" "$pristine_db"; do
      psql "$pg_url" -qc "CREATE DATABASE $name" >/dev/null
      [[ $schema == public ]] || psql "$pg_server/$name" -qc "CREATE SCHEMA $schema" >/dev/null
      for file in "$shared/legacy/postgres.sql" "$shared/platform/postgres.sql" "$shared/platform/data.postgres.sql"; do
        PGOPTIONS="-c search_path=$schema" psql -q -v ON_ERROR_STOP=1 -1 -d "$pg_server/$name" -f "$file" >/dev/null
      done
    done
    url="postgresql+psycopg2://${pg_server#postgres://}/$db"
    pristine="postgresql+psycopg2://${pg_server#postgres://}/$pristine_db"
    flowkey_url="$pg_server/$db?options=-csearch_path%3D$schema"
  else
    for name in platform pristine; do
      for file in "$shared/legacy/sqlite.sql" "$shared/platform/sqlite.sql" "$shared/platform/data.sqlite.sql"; do
        sqlite3 "$project/$name.db" < "$file"
      done
    done
    url="sqlite:///$project/platform.db"
    pristine="sqlite:///$project/pristine.db"
    flowkey_url="sqlite://$project/platform.db"
    schema=""
  fi
  say "case $case_number: $engine ${schema:+(schema $schema)}"
  alembic() {
    (cd "$project" && PLATFORM_DATABASE_URL=$url PLATFORM_SCHEMA=$schema \
      PRISTINE_DATABASE_URL=$pristine "$work/venv/bin/alembic" "$@")
  }
  flowkey_current() { local out; out=$("$flowkey" --database-url "$flowkey_url" --json current); echo "$out"; }

  "$flowkey" alembic-revision --versions-dir "$project/migrations/versions" \
    --flowkey-bin "$flowkey" --rev-id flowkey_bridge >&2
  grep -q '^down_revision = "add_v3_persistence_001"$' \
    "$project"/migrations/versions/flowkey_bridge_*.py || fail "the bridge does not chain after the platform's head"

  # Interrupted inside flowkey: Alembic fails with flowkey's one-line error, its book stays.
  local output
  if output=$(FAILPOINTS='runner::after_step=2*off->return(connection_lost)' alembic upgrade head 2>&1); then
    fail "an interrupted flowkey run did not fail alembic upgrade"
  fi
  grep -q 'FlowkeyError: error:' <<<"$output" || fail "Alembic's failure does not carry flowkey's error: $output"
  alembic current 2>&1 | grep 'add_v3_persistence_001' >/dev/null || fail "alembic_version moved on a failed run"
  flowkey_current | grep '"is_head": true' >/dev/null && fail "flowkey reached head on an interrupted run"

  # The same command again resumes the run.
  alembic upgrade head >/dev/null 2>"$work/upgrade.log" || { cat "$work/upgrade.log" >&2; fail "rerun of alembic upgrade head"; }
  alembic current 2>&1 | grep 'flowkey_bridge (head)' >/dev/null || fail "alembic current is not the bridge"
  flowkey_current | grep '"is_head": true' >/dev/null || fail "flowkey current is not head after alembic upgrade head"

  # Autogenerate: nothing about flowkey's objects with the filter; drops without it.
  alembic revision --autogenerate -m with_filter --rev-id with_filter >/dev/null 2>&1
  local proposed
  proposed=$(sed -n '/^def upgrade/,/^def downgrade/p' "$project"/migrations/versions/with_filter_*.py)
  grep -q 'op\.' <<<"$proposed" && fail "autogenerate proposes changes with the filter: $proposed"
  rm "$project"/migrations/versions/with_filter_*.py
  USE_FLOWKEY_FILTER=0 alembic revision --autogenerate -m without_filter --rev-id without_filter >/dev/null 2>&1
  grep -q "drop_table('flowkey_versions'" "$project"/migrations/versions/without_filter_*.py ||
    fail "without the filter autogenerate should propose dropping flowkey's tables (is the check still meaningful?)"
  rm "$project"/migrations/versions/without_filter_*.py

  # Offline: flowkey's own script in Alembic's output, both directions.
  alembic upgrade add_v3_persistence_001:flowkey_bridge --sql 2>/dev/null > "$work/offline.sql"
  grep -q 'session_flow_mapping' "$work/offline.sql" || fail "offline upgrade lacks flowkey's SQL"
  grep -Eq "UPDATE ([a-z_]+\.)?alembic_version SET version_num='flowkey_bridge'" "$work/offline.sql" || fail "offline upgrade does not move alembic_version"
  alembic downgrade flowkey_bridge:add_v3_persistence_001 --sql 2>/dev/null > "$work/offline_down.sql"
  grep -qi 'DROP TABLE.*session_flow_mapping' "$work/offline_down.sql" || fail "offline downgrade lacks flowkey's SQL"

  # Downgrade -1: flowkey back to legacy, the database as it was.
  alembic downgrade -1 >/dev/null 2>"$work/downgrade.log" || { cat "$work/downgrade.log" >&2; fail "alembic downgrade -1"; }
  alembic current 2>&1 | grep 'add_v3_persistence_001' >/dev/null || fail "alembic current after downgrade -1"
  flowkey_current | grep '"current": "legacy"' >/dev/null || fail "flowkey is not at legacy after alembic downgrade -1"
  (cd "$project" && PYTHONPATH="$project" "$python" "$root/tests/alembic/snapshot.py" "$url" "$schema") > "$work/after.txt"
  (cd "$project" && PYTHONPATH="$project" "$python" "$root/tests/alembic/snapshot.py" "$pristine" "$schema") > "$work/pristine.txt"
  diff -u "$work/pristine.txt" "$work/after.txt" >&2 || fail "the database differs from its pristine copy after alembic downgrade -1"
  say "case $case_number: passed"
}

run_case postgres migration
run_case postgres public
run_case sqlite ""
say "all cases passed"
