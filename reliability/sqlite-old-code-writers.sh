#!/usr/bin/env bash
# Reproduction (SQLite): `flowkey upgrade head` while old code keeps writing by session_id.
#
#   bash reliability/sqlite-old-code-writers.sh [FLOWKEY_BINARY]
#
# Seeds a legacy SQLite file, starts one `sqlite3` process that inserts data_imports rows
# (session_id only, autocommit, .timeout 10000 like any well-behaved client, one every ~5 ms)
# in a loop, and
# runs `flowkey upgrade head --batch-target-ms 1` under it. Expected: the upgrade succeeds and
# every row old code wrote ends linked. Exit 0 when it does, 1 when it does not.
#
# Last result (2026-11-26, see docs/reliability.md): 8 of 9 runs fail, in varying steps, e.g.
#   error: step "backfill data_imports" of revision "flow_backfill" failed: error returned
#   from database: (code: 517) database is locked
# 517 is SQLITE_BUSY_SNAPSHOT: a deferred transaction that read first and then writes, after
# another connection committed in between; busy_timeout does not apply to it. The backfill
# batch (src/migrate/flow/backfill.rs, `db.begin()` then `next_bound` SELECT then UPDATE)
# needs `BEGIN IMMEDIATE` on SQLite (sqlx: `pool.begin_with("BEGIN IMMEDIATE")`).
set -uo pipefail
cd "$(dirname "$0")/.."
flowkey="${1:-target/debug/flowkey}"
[ -x "$flowkey" ] || cargo build --quiet
work=$(mktemp -d)
trap 'kill "$writer" 2>/dev/null; rm -rf "$work"' EXIT
db="$work/old-code.db"
url="sqlite://$db"
"$flowkey" --database-url "$url" seed --tenants 3 --imports 10 --rows-per-import 60 --no-progress >/dev/null
read -r session tenant engagement user < <(sqlite3 -separator ' ' "$db" \
  "SELECT id, client_account_id, engagement_id, created_by FROM data_import_sessions ORDER BY id LIMIT 1")
{
  echo ".timeout 10000"
  for i in $(seq 1 5000); do
    echo ".shell sleep 0.005"
    echo "INSERT INTO data_imports (id, client_account_id, engagement_id, session_id, import_name, import_type, source_filename, imported_by) VALUES (lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))),2) || '-a' || substr(lower(hex(randomblob(2))),2) || '-' || lower(hex(randomblob(6))), '$tenant', '$engagement', '$session', 'old code', 'csv', 'old.csv', '$user');"
  done
} >"$work/writes.sql"
sqlite3 "$db" <"$work/writes.sql" >"$work/writer.out" 2>&1 &
writer=$!
sleep 0.3
"$flowkey" --database-url "$url" upgrade head --batch-target-ms 1 --no-progress >/dev/null 2>"$work/upgrade.err"
upgrade=$?
kill "$writer" 2>/dev/null; wait "$writer" 2>/dev/null
writer_errors=$(grep -c -i "error" "$work/writer.out")
echo "upgrade exit: $upgrade $(cat "$work/upgrade.err")"
echo "old-code writer errors: $writer_errors"
if [ "$upgrade" -eq 0 ]; then
  unlinked=$(sqlite3 "$db" "SELECT count(*) FROM data_imports r LEFT JOIN session_flow_mapping m ON m.session_id = r.session_id WHERE r.import_name = 'old code' AND (r.flow_id IS NULL OR r.flow_id <> m.flow_id)")
  echo "old-code rows not linked: $unlinked"
  [ "$unlinked" -eq 0 ] && [ "$writer_errors" -eq 0 ] && exit 0
fi
exit 1
