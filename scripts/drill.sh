#!/usr/bin/env bash
# The rollout drill: docs/rollout.md followed step by step on a seeded legacy database while
# two "old code" writers keep writing the legacy way (session_id only), asserting at each step.
#
#   bash scripts/drill.sh sqlite|postgres [RAW_RECORDS]      (default 2000 raw records)
#
# FLOWKEY_BIN: the binary (default target/debug/flowkey). PostgreSQL: FLOWKEY_TEST_PG_URL, or
# postgres://postgres@127.0.0.1:5432/test (trust auth); the drill creates and drops its own
# database there. Needs sqlite3 or psql + pgbench + pg_dump, python3, curl.
# FLOWKEY_DRILL_KEEP=1 keeps the work directory (logs, database file, every command's output).
#
# Steps (the runbook's sections): 0 seed and snapshot the legacy rows, start the writers;
# 1 upgrade head while they write (rollback: downgrade legacy, legacy rows checked, upgrade
# again); 2 verify, flag get, report; 3 serve (JWT, claims grants, admin token), readiness;
# 4 shadow (rollback: off, shadow again), every session read through every v1 route in every
# id spelling, shadow mismatches 0; 5 catch-up, `on` without --force (rollback: shadow, on
# again), the v1 reads again; 6 writes and reads through v3 (and a v1 upload) under on;
# 7 rollbacks from there: off, downgrade -1 while serving (503, upgrade head serves again),
# downgrade -1 twice more, stop the server, downgrade legacy: legacy schema as before, every
# row that existed before the drill present and unchanged, every old-code row present, the
# rows written through v3 kept and reachable by a legacy session (BREAKING_CHANGES.md);
# 8 stop the writers: 0 errors, their latency alone and over the drill.
# Prints one line per step with its wall time; exits 1 on the first failed assertion.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

engine="${1:-}"
raw="${2:-2000}"
case "$engine" in sqlite | postgres) ;; *)
  echo "usage: scripts/drill.sh sqlite|postgres [RAW_RECORDS]" >&2
  exit 2
  ;;
esac
[[ "$raw" =~ ^[0-9]+$ ]] && ((raw >= 200)) || {
  echo "RAW_RECORDS: a whole number, at least 200" >&2
  exit 2
}
bin="${FLOWKEY_BIN:-target/debug/flowkey}"
[[ "$bin" = /* ]] || bin="$repo/$bin"
[[ -x "$bin" ]] || {
  echo "no flowkey binary at $bin (cargo build, or set FLOWKEY_BIN)" >&2
  exit 2
}

# Size: two tenants; imports of 100 raw records up to 20k, of 1000 beyond.
tenants=2
per_import=100
((raw > 20000)) && per_import=1000
imports=$(((raw + tenants * per_import - 1) / (tenants * per_import)))

needed=(python3 curl awk comm)
if [[ "$engine" == sqlite ]]; then needed+=(sqlite3); else needed+=(psql pgbench pg_dump); fi
for tool in "${needed[@]}"; do
  command -v "$tool" >/dev/null || {
    echo "the drill needs $tool" >&2
    exit 2
  }
done

work=$(mktemp -d /tmp/flowkey-drill.XXXXXX)
server=""
writer_pids=()
pg_admin=""
pg_db=""
cleanup() {
  touch "$work/stop"
  [[ -n "$server" ]] && kill "$server" 2>/dev/null
  for pid in "${writer_pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  if [[ -n "$pg_db" ]]; then
    psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1
  fi
  if [[ -n "${FLOWKEY_DRILL_KEEP:-}" ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ "$engine" == sqlite ]]; then
  db_file="$work/drill.db"
  url="sqlite://$db_file"
  q() { sqlite3 -cmd ".timeout 10000" "$db_file" "$1"; }
else
  pg_admin="${FLOWKEY_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
  pg_db="flowkey_drill_$$"
  PGOPTIONS="-c client_min_messages=warning" psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" \
    -c "CREATE DATABASE $pg_db" >/dev/null ||
    {
      echo "cannot create database $pg_db at $pg_admin" >&2
      exit 1
    }
  # The admin URL with the drill's database in place of its own.
  url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$pg_admin" "$pg_db")
  q() { psql "$url" -XAtqc "$1"; }
fi
fk() { "$bin" --database-url "$url" "$@"; }

since() { # start [end]: seconds between two `date +%s.%N` instants (end: now)
  awk -v a="$1" -v b="${2:-$(date +%s.%N)}" 'BEGIN { printf "%.2f", b - a }'
}
fail() {
  echo "DRILL FAILED ($engine, step $current_step): $*" >&2
  exit 1
}
current_step="0 seed"
step_started=0
timings=()
windows=()
step() { # "N name": closes the previous step's timing and opens this one
  local now
  now=$(date +%s.%N)
  if [[ "$step_started" != 0 ]]; then
    timings+=("$(printf '%-54s %7.2f s' "$current_step" "$(since "$step_started" "$now")")")
    windows+=("$step_started $now")
  fi
  current_step="$1"
  step_started=$now
  echo "== $engine: $1" >&2
}
expect_eq() { # what actual expected
  [[ "$2" == "$3" ]] || fail "$1: $2, expected $3"
}

# ---------------------------------------------------------------------------------------
step "0 seed $raw raw records, snapshot, old code alone 3 s"
fk seed --tenants "$tenants" --imports "$imports" --rows-per-import "$per_import" --no-progress >"$work/seed.out" ||
  fail "seed: $(tail -1 "$work/seed.out")"

# The legacy tables and their columns, by name (id first: the snapshot's key).
legacy_columns() {
  if [[ "$engine" == sqlite ]]; then
    q "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
       WHERE m.type = 'table' AND m.name NOT LIKE 'flowkey%' AND m.name NOT LIKE 'sqlite%'
       ORDER BY m.name, p.name <> 'id', p.cid" | tr '|' ' '
  else
    q "SELECT table_name, column_name FROM information_schema.columns
       WHERE table_schema = 'public' AND table_name NOT LIKE 'flowkey%'
       ORDER BY table_name, column_name <> 'id', ordinal_position" | tr '|' ' '
  fi | awk '$1 != t { if (t) print line; t = $1; line = $1 } { line = line " " $2 } END { print line }'
}
legacy_columns >"$work/columns"
# Every legacy row as `table id hash-of-its-legacy-columns`, sorted.
snapshot() { # out
  if [[ "$engine" == sqlite ]]; then
    python3 scripts/drill.py sqlite-snapshot "$db_file" "$work/columns" "$1"
  else
    while read -r table columns; do
      cols=$(echo "$columns" | sed 's/ /, /g')
      q "SELECT '$table ' || id || ' ' || md5(ROW($cols)::text) FROM $table"
    done <"$work/columns" | sort >"$1"
  fi
}
schema_text() { # the legacy schema, flowkey's own tables left out
  if [[ "$engine" == sqlite ]]; then
    q "SELECT type, name, tbl_name, sql FROM sqlite_master
       WHERE name NOT LIKE 'flowkey%' AND name NOT LIKE 'sqlite%' ORDER BY type, name"
  else
    pg_dump --schema-only --no-owner --no-privileges -T 'flowkey_*' "$url" |
      grep -v -e '^--' -e '^\\restrict' -e '^\\unrestrict' -e '^$'
  fi
}
snapshot "$work/legacy.before"
schema_text >"$work/schema.before"
expect_eq "raw records seeded" "$(q "SELECT count(*) FROM raw_import_records")" "$((tenants * imports * per_import))"
q "SELECT id, client_account_id, engagement_id, created_by FROM data_import_sessions ORDER BY id" |
  tr '|' ' ' >"$work/sessions"

# Old code: two writers, the legacy application's SQL, through the whole drill.
touch "$work/writers.alone"
start_writers() {
  if [[ "$engine" == sqlite ]]; then
    for w in 1 2; do
      python3 scripts/drill.py sqlite-writer "$db_file" "$work/sessions" "$work/stop" "$work/writer$w.log" "w$w" \
        2>>"$work/writer$w.err" &
      writer_pids+=($!)
    done
  else
    cat >"$work/write.sql" <<'SQL'
SELECT s.id AS old, s.client_account_id AS cid, s.engagement_id AS eid, s.created_by AS uid, gen_random_uuid() AS sid, gen_random_uuid() AS iid, gen_random_uuid() AS iid2 FROM data_import_sessions AS s WHERE s.id = COALESCE((SELECT id FROM data_import_sessions WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1), (SELECT id FROM data_import_sessions ORDER BY id LIMIT 1)) \gset
INSERT INTO data_import_sessions (id, client_account_id, engagement_id, session_name, created_by) VALUES (:sid, :cid, :eid, 'drill old code', :uid);
BEGIN;
INSERT INTO discovery_flows (id, flow_id, client_account_id, engagement_id, user_id, import_session_id, flow_name) VALUES (gen_random_uuid(), gen_random_uuid(), :cid, :eid, :uid, :sid, 'drill old code');
INSERT INTO data_imports (id, client_account_id, engagement_id, session_id, import_name, import_type, source_filename, imported_by) VALUES (:iid, :cid, :eid, :sid, 'drill old code', 'cmdb', 'drill.csv', :uid);
INSERT INTO raw_import_records (id, data_import_id, client_account_id, engagement_id, session_id, row_number, raw_data) SELECT gen_random_uuid(), :iid, :cid, :eid, :sid, g, '{"hostname":"drill-old-code"}' FROM generate_series(1, 3) AS g;
UPDATE raw_import_records SET is_processed = true WHERE data_import_id = :iid AND row_number <= 3;
COMMIT;
BEGIN;
INSERT INTO data_imports (id, client_account_id, engagement_id, session_id, import_name, import_type, source_filename, imported_by) VALUES (:iid2, :cid, :eid, :old, 'drill old code', 'cmdb', 'drill.csv', :uid);
INSERT INTO raw_import_records (id, data_import_id, client_account_id, engagement_id, session_id, row_number, raw_data) VALUES (gen_random_uuid(), :iid2, :cid, :eid, :old, 1, '{"hostname":"drill-old-code"}');
COMMIT;
SELECT id, status, total_records FROM data_imports WHERE session_id = :old;
SELECT id, row_number, raw_data FROM raw_import_records WHERE session_id = :sid LIMIT 20;
SQL
    for w in 1 2; do
      (
        k=0
        # pgbench in 2 s rounds until told to stop: each round's log is complete.
        while [[ ! -e "$work/stop" ]]; do
          k=$((k + 1))
          pgbench -n -M extended -c 1 -T 2 -R 3 -f "$work/write.sql" -l --log-prefix="$work/pg$w.$k" "$url" \
            >>"$work/writer$w.out" 2>>"$work/writer$w.err" || echo "pgbench exit $?" >>"$work/writer$w.err"
        done
      ) &
      writer_pids+=($!)
    done
  fi
}
writer_errors() {
  if [[ "$engine" == sqlite ]]; then
    cat "$work"/writer?.log 2>/dev/null | grep -c '^error'
    cat "$work"/writer?.err 2>/dev/null | grep -c .
  else
    cat "$work"/writer?.err 2>/dev/null | grep -c -i -e error -e abort -e 'pgbench exit'
    echo 0
  fi | awk '{ n += $1 } END { print n + 0 }'
}
latency_of() { # [--window FROM TO] files... -> "N ops, p50 …"
  local window=()
  [[ "${1:-}" == --window ]] && window=("$1" "$2" "$3") && shift 3
  if [[ "$engine" == sqlite ]]; then
    python3 scripts/drill.py latency "${window[@]}" "$@"
  else
    # pgbench -l: client, transaction, latency in µs, script, epoch s, µs: one line per
    # script run (the whole round of the old code's statements).
    cat "$@" 2>/dev/null | awk '{ printf "ok %.3f %d.%06d\n", $3 / 1000, $5, $6 }' >"$work/pg.lat"
    python3 scripts/drill.py latency "${window[@]}" "$work/pg.lat"
  fi
}
writer_logs() {
  if [[ "$engine" == sqlite ]]; then ls "$work"/writer?.log 2>/dev/null; else ls "$work"/pg?.*.* 2>/dev/null; fi
}
start_writers
sleep 3
alone_latency=$(latency_of $(writer_logs))
[[ "$alone_latency" != "no operations" ]] || fail "the old-code writers wrote nothing: $(cat "$work"/writer?.err | head -3)"
expect_eq "old-code errors before the upgrade" "$(writer_errors)" 0

# ---------------------------------------------------------------------------------------
legacy_intact() { # label: every row that existed before the drill, present and unchanged
  snapshot "$work/legacy.now"
  missing=$(comm -23 "$work/legacy.before" "$work/legacy.now" | wc -l)
  expect_eq "$1: legacy rows missing or changed" "$missing" 0
}
step "1 upgrade head (writers on)"
fk upgrade head --no-progress >"$work/upgrade.out" 2>&1 || fail "upgrade head: $(grep error "$work/upgrade.out" | tail -1)"
fk current | grep -q "(head)" || fail "not at head after upgrade: $(fk current)"
expect_eq "old-code errors during upgrade" "$(writer_errors)" 0

step "1 rollback: downgrade legacy, upgrade head"
fk downgrade legacy --no-progress >"$work/downgrade1.out" 2>&1 || fail "downgrade legacy: $(tail -1 "$work/downgrade1.out")"
diff "$work/schema.before" <(schema_text) >"$work/schema.diff" || fail "legacy schema differs after downgrade legacy: $(head -5 "$work/schema.diff")"
legacy_intact "after downgrade legacy"
fk upgrade head --no-progress >"$work/upgrade2.out" 2>&1 || fail "upgrade head again: $(tail -1 "$work/upgrade2.out")"
expect_eq "old-code errors during the round trip" "$(writer_errors)" 0

# ---------------------------------------------------------------------------------------
step "2 verify, flag get, report (writers on)"
# The go/no-go while old code writes (issue 12, item 4): `verify --online` compares every
# legacy row with the write ledger's baseline, leaving out the rows the application wrote
# since the ledger's start, and runs every link check; it must pass (exit 0) with the
# writers on, having seen their writes, and name no row. At a small size the upgrade can
# end before the writers' next write lands in the ledger it starts: wait for one (they write
# every few milliseconds), so that the check below tests the verify, not the timing.
for _ in $(seq 150); do
  [[ "$(q "SELECT count(*) FROM flowkey_write_ledger")" -gt 0 ]] && break
  sleep 0.1
done
fk verify --online --json >"$work/verify.json" 2>"$work/verify.err" ||
  fail "verify --online: $(tail -1 "$work/verify.err")"
python3 - "$work/verify.json" >"$work/verify.check" <<'PY' || fail "verify --online: $(cat "$work/verify.check")"
import json, sys
report = json.load(open(sys.argv[1]))
ledger = report.get("ledger")
problems = [] if ledger else ["no write ledger in the report"]
if ledger:
    problems += [f"unexplained {row}" for row in ledger["unexplained_rows"]]
    if sum(t["written_by_application"] for t in ledger["tables"]) == 0:
        problems.append("the ledger saw none of the writers' writes")
problems += [f"{t['table']}: {k} {t[k]}" for t in report["tables"]
             for k in ("wrong_flow", "crosses_tenant", "orphan_flow") if t[k]]
problems += [f"offending row {row}" for row in report["offending_rows"]]
written = sum(t["written_by_application"] for t in ledger["tables"]) if ledger else 0
print("; ".join(problems) or f"links sound; no legacy row changed but the application's {written}")
sys.exit(1 if problems else 0)
PY
t0=$(date +%s.%N)
fk flag get >"$work/flag-get.out" 2>&1 || fail "flag get: $(tail -1 "$work/flag-get.out")"
readiness_source() {
  if grep -q 'checked again by the delta' "$1"; then
    grep -o '[0-9]* rows checked again by the delta' "$1" | head -1
  else
    grep -o -e 'verification stored at' -e 'run now' "$1" | head -1
  fi
}
readiness_times="flag get $(since "$t0") s ($(readiness_source "$work/flag-get.out"))"
fk report >"$work/report.out" 2>&1 || fail "report: $(tail -1 "$work/report.out")"
expect_eq "old-code errors during verify" "$(writer_errors)" 0

# ---------------------------------------------------------------------------------------
step "3 serve (JWT, claims grants)"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin_token=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
jwt_secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
ADMIN="Authorization: Bearer $admin_token"
FLOWKEY_ADMIN_TOKEN="$admin_token" FLOWKEY_JWT_SECRET="$jwt_secret" FLOWKEY_FLAG_POLL_MS=250 \
  FLOWKEY_SCHEMA_POLL_MS=250 "$bin" serve --database-url "$url" --bind "127.0.0.1:$port" \
  --auth jwt --grants claims >"$work/serve.out" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  [[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/ready")" == 200 ]] && break
  kill -0 "$server" 2>/dev/null || fail "serve exited: $(tail -3 "$work/serve.out")"
  sleep 0.1
done
expect_eq "/ready" "$(curl -s -o /dev/null -w '%{http_code}' "$base/ready")" 200
curl -sf -H "$ADMIN" "$base/api/admin/readiness" >"$work/readiness.json" || fail "admin readiness: $(cat "$work/readiness.json")"
curl -sf -H "$ADMIN" "$base/api/admin/mapping-statistics" >/dev/null || fail "admin mapping-statistics"
grep -q '^flowkey_shadow_mismatches_total' <(curl -s "$base/metrics") || fail "/metrics has no flowkey_shadow_mismatches_total before the first event"
# A token per tenant: sub = a user of the tenant, the tenant in its claims.
token_for() { # client engagement
  local user
  user=$(awk -v c="$1" -v e="$2" '$2 == c && $3 == e { print $4; exit }' "$work/sessions")
  python3 scripts/drill.py jwt "$jwt_secret" "$user" "$1" "$2"
}
api() { # client engagement method path [curl args...] -> body in $work/api.body, prints status
  local c=$1 e=$2 m=$3 p=$4
  shift 4
  curl -s -o "$work/api.body" -w '%{http_code}' -X "$m" -H "Authorization: Bearer $(token_for "$c" "$e")" \
    -H "X-Client-Account-Id: $c" -H "X-Engagement-Id: $e" "$@" "$base$p"
}

# Every session read through every v1 GET route in every id spelling, one curl per tenant.
v1_reads() { # label
  local c e token n=0
  q "SELECT id, client_account_id, engagement_id FROM data_import_sessions ORDER BY id" | tr '|' ' ' >"$work/all-sessions"
  : >"$work/v1.codes"
  for tenant in $(awk '{ print $2 ":" $3 }' "$work/sessions" | sort -u); do
    c=${tenant%:*} e=${tenant#*:}
    token=$(token_for "$c" "$e")
    awk -v c="$c" -v e="$e" -v base="$base" '$2 == c && $3 == e {
      n = split("data-import/import/%s data-import/import/%s/records data-import/processing-status/%s data-import/validation-session/%s unified-discovery/flow/status/%s", routes, " ")
      split($1 " disc_session_" $1 " session-" $1 " " toupper($1), forms, " ")
      for (r = 1; r <= n; r++) for (f = 1; f <= 4; f++) {
        printf "url = \"%s/api/v1/" routes[r] "\"\noutput = \"/dev/null\"\n", base, forms[f]
      }
    }' "$work/all-sessions" >"$work/curl.cfg"
    [[ -s "$work/curl.cfg" ]] || continue
    curl -s -K "$work/curl.cfg" -w '%{http_code}\n' -H "Authorization: Bearer $token" \
      -H "X-Client-Account-Id: $c" -H "X-Engagement-Id: $e" >>"$work/v1.codes"
  done
  n=$(wc -l <"$work/v1.codes")
  ((n > 0)) || fail "$1: no v1 reads made"
  bad=$(grep -c -v -e '^200$' -e '^404$' "$work/v1.codes")
  expect_eq "$1: v1 answers other than 200/404 (of $n)" "$bad" 0
  echo "$1: $n v1 reads, $(grep -c '^200$' "$work/v1.codes") answered 200" >&2
}
metric_sum() { # name: the sum of a series over its labels
  curl -s "$base/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { print s + 0 }'
}
flag() { # value
  fk flag set enable_flow_id_primary "$1" >"$work/flag.out" 2>&1 || fail "flag set $1: $(cat "$work/flag.out")"
  sleep 0.6 # two poll intervals of the server (FLOWKEY_FLAG_POLL_MS=250)
}

# ---------------------------------------------------------------------------------------
step "4 shadow, v1 reads (rollback: off, shadow)"
flag shadow
flag off
flag shadow
v1_reads "shadow"
reads=$(metric_sum flowkey_shadow_reads_total)
((reads > 0)) || fail "shadow compared no reads"
expect_eq "shadow mismatches (of $reads reads compared)" "$(metric_sum flowkey_shadow_mismatches_total)" 0
expect_eq "old-code errors while serving" "$(writer_errors)" 0

# ---------------------------------------------------------------------------------------
step "5 catch-up, on without --force (rollback: shadow, on)"
# The old application creates a session in one transaction and its flow in the next: a
# session committed between catch-up and the gate's count has no mapping for those
# milliseconds, and the gate refuses. Then: catch-up and `flag set … on` again (runbook step 5).
catch_up_and_on() {
  local try
  for try in 1 2 3 4 5; do
    fk catch-up >"$work/catch-up.out" 2>&1 || fail "catch-up: $(tail -1 "$work/catch-up.out")"
    t0=$(date +%s.%N)
    fk flag set enable_flow_id_primary on >"$work/flag.out" 2>&1
    status=$?
    readiness_times="$readiness_times; flag set on $(since "$t0") s"
    if [[ $status == 0 ]]; then
      sleep 0.6
      return
    fi
    grep -q "sessions without a mapping" "$work/flag.out" || fail "flag set on: $(cat "$work/flag.out")"
    on_retries=$((on_retries + 1))
  done
  fail "flag set on refused 5 times: $(cat "$work/flag.out")"
}
on_retries=0
catch_up_and_on
flag shadow
catch_up_and_on
fk flag get >"$work/flag-get2.out" 2>&1
forced=$(q "SELECT count(*) FROM flowkey_flag_changes WHERE forced = $([[ $engine == sqlite ]] && echo 1 || echo true)")
expect_eq "forced flag changes" "$forced" 0
v1_reads "on"
expect_eq "old-code errors under on" "$(writer_errors)" 0

# ---------------------------------------------------------------------------------------
step "6 v3 writes and reads under on"
read -r _ c e _ < <(head -1 "$work/sessions")
status=$(api "$c" "$e" POST /api/v3/data-import/imports -H 'Content-Type: application/json' \
  --data '{"file_data":[{"hostname":"drill-v3-a","ip":"10.0.0.1"},{"hostname":"drill-v3-b","ip":"10.0.0.2"}],"metadata":{"filename":"drill-v3.json"}}')
expect_eq "v3 JSON import" "$status" 201
v3_import=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["data"]["import_id"])' "$work/api.body")
v3_flow=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["data"]["flow_id"])' "$work/api.body")
printf 'hostname,ip\ndrill-v3-c,10.0.0.3\ndrill-v3-d,10.0.0.4\ndrill-v3-e,10.0.0.5\n' >"$work/upload.csv"
status=$(api "$c" "$e" POST /api/v3/data-import/imports/upload -F "file=@$work/upload.csv;type=text/csv")
expect_eq "v3 CSV upload" "$status" 201
v3_upload=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["data"]["import_id"])' "$work/api.body")
status=$(api "$c" "$e" POST /api/v1/data-import/store-import -H 'Content-Type: application/json' \
  --data '{"file_data":[{"hostname":"drill-v1-a"}],"metadata":{"filename":"drill-v1.csv"}}')
expect_eq "v1 store-import under on" "$status" 200
v1_session=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["data"]["import_session_id"])' "$work/api.body")
expect_eq "v3 flow" "$(api "$c" "$e" GET "/api/v3/discovery-flow/flows/$v3_flow")" 200
expect_eq "v3 records" "$(api "$c" "$e" GET "/api/v3/data-import/imports/$v3_import/records")" 200
expect_eq "v3 upload's records" "$(api "$c" "$e" GET "/api/v3/data-import/imports/$v3_upload/records")" 200
expect_eq "v1 import of the v1 upload" "$(api "$c" "$e" GET "/api/v1/data-import/import/disc_session_$v1_session")" 200
expect_eq "v1 flow status of the v1 upload" "$(api "$c" "$e" GET "/api/v1/unified-discovery/flow/status/$v1_session")" 200
unlinked=$(q "SELECT count(*) FROM raw_import_records r JOIN data_imports i ON i.id = r.data_import_id
              WHERE i.import_name = 'drill old code' AND r.flow_id IS NULL")
expect_eq "old-code raw records without a flow_id" "$unlinked" 0

# ---------------------------------------------------------------------------------------
step "7 rollback: off"
flag off
expect_eq "v1 read under off" "$(api "$c" "$e" GET "/api/v1/data-import/import/$v1_session")" 200

step "7 rollback: downgrade -1 while serving"
fk downgrade -1 --no-progress >"$work/down-1.out" 2>&1 || fail "downgrade -1: $(tail -1 "$work/down-1.out")"
gate_answer() { # status: what a v3 route answers once the server's schema gate has looked
  local gate=""
  for _ in $(seq 1 50); do # FLOWKEY_SCHEMA_POLL_MS=250: at most a few polls
    gate=$(api "$c" "$e" GET "/api/v3/discovery-flow/flows/$v3_flow")
    [[ "$gate" == "$1" ]] && break
    sleep 0.1
  done
  echo "$gate"
}
expect_eq "a v3 route below head" "$(gate_answer 503)" 503
grep -q schema_not_at_head "$work/api.body" || fail "503 without schema_not_at_head: $(cat "$work/api.body")"
expect_eq "/health below head" "$(curl -s -o /dev/null -w '%{http_code}' "$base/health")" 200
fk upgrade head --no-progress >"$work/up-again.out" 2>&1 || fail "upgrade head again: $(tail -1 "$work/up-again.out")"
expect_eq "a v3 route back at head" "$(gate_answer 200)" 200
for n in 1 2 3; do
  fk downgrade -1 --no-progress >"$work/down-$n.out" 2>&1 || fail "downgrade -1 (#$n): $(tail -1 "$work/down-$n.out")"
done
expect_eq "a v3 route three revisions below head" "$(gate_answer 503)" 503
expect_eq "old-code errors during downgrade -1" "$(writer_errors)" 0

step "7 rollback: stop the server, downgrade legacy"
kill -TERM "$server"
wait "$server" 2>/dev/null
server=""
fk downgrade legacy --no-progress >"$work/downgrade-legacy.out" 2>&1 ||
  fail "downgrade legacy: $(tail -1 "$work/downgrade-legacy.out")"
fk current | grep -q legacy || fail "not at legacy: $(fk current)"
diff "$work/schema.before" <(schema_text) >"$work/schema.diff" ||
  fail "legacy schema differs after downgrade legacy: $(head -5 "$work/schema.diff")"
legacy_intact "after the final downgrade legacy"
# Rows written through v3 stay (BREAKING_CHANGES.md, src/migrate/flow/downgrade.rs): a v3
# import keeps a NULL session_id and is reached the legacy way through the flow that names it
# (discovery_flows.data_import_id), its records through the import; a v1 upload's rows keep
# their session.
expect_eq "v3 imports kept" "$(q "SELECT count(*) FROM data_imports WHERE id IN ('$v3_import', '$v3_upload')")" 2
expect_eq "v3 raw records kept" "$(q "SELECT count(*) FROM raw_import_records WHERE data_import_id IN ('$v3_import', '$v3_upload')")" 5
expect_eq "v3 imports named by their flows" "$(q "SELECT count(*) FROM discovery_flows WHERE data_import_id IN ('$v3_import', '$v3_upload')")" 2
# (The writers add imports to random existing sessions, the v1 upload's included: count its own.)
expect_eq "v1 upload's session kept" "$(q "SELECT count(*) FROM data_imports WHERE session_id = '$v1_session' AND source_filename = 'drill-v1.csv'")" 1

# ---------------------------------------------------------------------------------------
step "8 stop the writers, count their rows"
touch "$work/stop"
for pid in "${writer_pids[@]}"; do wait "$pid"; done
writer_pids=()
expect_eq "old-code errors" "$(writer_errors)" 0
if [[ "$engine" == sqlite ]]; then
  sessions_ok=$(cat "$work"/writer?.log | grep -c '^ok [0-9.]* [0-9.]* session$')
  flows_ok=$(cat "$work"/writer?.log | grep -c '^ok [0-9.]* [0-9.]* flow+import$')
  old_ok=$(cat "$work"/writer?.log | grep -c '^ok [0-9.]* [0-9.]* old-session import$')
  expect_eq "old-code sessions present" "$(q "SELECT count(*) FROM data_import_sessions WHERE session_name LIKE 'drill w%'")" "$sessions_ok"
else
  flows_ok=$(cat $(writer_logs) | wc -l)
  old_ok=$flows_ok
  expect_eq "old-code sessions present" "$(q "SELECT count(*) FROM data_import_sessions WHERE session_name = 'drill old code'")" "$flows_ok"
fi
expect_eq "old-code imports present" "$(q "SELECT count(*) FROM data_imports WHERE import_name = 'drill old code'")" "$((flows_ok + old_ok))"
expect_eq "old-code raw records present" "$(q "SELECT count(*) FROM raw_import_records r JOIN data_imports i ON i.id = r.data_import_id WHERE i.import_name = 'drill old code'")" "$((3 * flows_ok + old_ok))"
drill_latency=$(latency_of $(writer_logs))
step "done"

echo "drill $engine, $raw raw records: passed"
echo "step (wall time; the old-code writers' operations that ended within it)"
for i in "${!timings[@]}"; do
  echo "${timings[$i]}  $(latency_of --window ${windows[$i]} $(writer_logs))"
done
echo "old-code writers: 0 errors; alone (3 s before the upgrade): $alone_latency; whole drill: $drill_latency"
echo "verify --online (writers on): $(cat "$work/verify.check")"
echo "readiness: $readiness_times"
echo "flag set on refused for a session created between catch-up and the gate, then retried: $on_retries time(s)"
echo "old-code rows written during the drill: $((flows_ok + old_ok)) imports, $((3 * flows_ok + old_ok)) raw records, all present after downgrade legacy"
