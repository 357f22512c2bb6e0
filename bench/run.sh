#!/usr/bin/env bash
# flowkey's whole-system benchmark: one command, every figure a ratio to a baseline measured in
# the same run on the same data. See docs/benchmarks.md for what each figure means.
#
#   bash bench/run.sh [--sizes 100000,1000000] [--engines postgres,sqlite] [--out DIR]
#                     [--clients 4] [--http-secs 10] [--skip-lock] [--skip-http] [--no-build]
#                     [--lock-only] [--load-secs N] [--alone-secs N]
#   --lock-only: seed, then only the lock-impact figures; --load-secs: the legacy load's length
#   during the upgrade (default 1.5x the recorded upgrade time + 10 s); --alone-secs: the
#   baseline load's length (default the same)
#   --shapes default,issue13,small-imports,huge-imports,many-mappings,no-flow-sessions,placeholder
#   (or all): instead of the suite above, per data shape, engine and size: the whole
#   `upgrade head` against the naive offline migration on identical copies, the per-step split
#   from the audit log, peak RSS, and the fingerprint against count(*) (bench/shapes_report.py);
#   --shape-timeout SECS (default 1800) stops an upgrade that runs longer and records it
#
# Needs: target/release/flowkey (built unless --no-build), /usr/bin/time, psql, createdb,
# dropdb, pgbench (PostgreSQL at $PG_HOST:$PG_PORT, user $PG_USER, trust auth), sqlite3,
# python3 (standard library only). Loopback only; every loop is bounded.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

SIZES=100000
ENGINES=postgres,sqlite
OUT=""
CLIENTS=4
HTTP_SECS=10
SKIP_LOCK=0
SKIP_HTTP=0
LOCK_ONLY=0
LOAD_SECS=""
ALONE_SECS=""
BUILD=1
SHAPES=""
SHAPE_TIMEOUT=1800
SEED=42
TENANTS=4
IMPORTS_PER_TENANT=25
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-postgres}
FLOWKEY=${FLOWKEY:-$ROOT/target/release/flowkey}

usage() { sed -n 2,16p "$0"; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) SIZES=$2; shift 2 ;;
        --engines) ENGINES=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --http-secs) HTTP_SECS=$2; shift 2 ;;
        --skip-lock) SKIP_LOCK=1; shift ;;
        --skip-http) SKIP_HTTP=1; shift ;;
        --lock-only) LOCK_ONLY=1; SKIP_HTTP=1; shift ;;
        --load-secs) LOAD_SECS=$2; shift 2 ;;
        --alone-secs) ALONE_SECS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --shapes) SHAPES=$2; shift 2 ;;
        --shape-timeout) SHAPE_TIMEOUT=$2; shift 2 ;;
        -h|--help) usage ;;
        *) echo "unknown option $1" >&2; usage ;;
    esac
done

OUT=${OUT:-$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
WORK=$OUT/work
mkdir -p "$WORK"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"

if [ "$BUILD" = 1 ]; then
    cargo build --release --quiet
fi
[ -x "$FLOWKEY" ] || { echo "no flowkey binary at $FLOWKEY" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (apt-get install time)" >&2; exit 1; }

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# record ENGINE SIZE METRIC VALUE: one JSON line per figure, summarised by bench/report.py.
record() {
    printf '{"engine":"%s","size":%s,"metric":"%s","value":%s}\n' "$1" "$2" "$3" "$4" >> "$RESULTS"
}

pg_admin() { psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1 "$@" 2>&1 | { grep -v "does not exist, skipping" || true; } >&2; }
pg_url() { echo "postgres://$PG_USER@$PG_HOST:$PG_PORT/$1"; }
sqlite_path() { echo "$WORK/$1.db"; }

db_url() { # ENGINE NAME
    case "$1" in
        postgres) pg_url "$2" ;;
        sqlite) echo "sqlite://$(sqlite_path "$2")" ;;
    esac
}

db_drop() { # ENGINE NAME
    case "$1" in
        postgres) pg_admin -c "DROP DATABASE IF EXISTS \"$2\" WITH (FORCE)" ;;
        sqlite) rm -f "$(sqlite_path "$2")" "$(sqlite_path "$2")-wal" "$(sqlite_path "$2")-shm" ;;
    esac
}

db_create_empty() { # ENGINE NAME
    db_drop "$1" "$2"
    case "$1" in
        postgres) pg_admin -c "CREATE DATABASE \"$2\"" ;;
        sqlite) : ;;
    esac
}

db_copy() { # ENGINE FROM TO: a byte-level copy of the seeded database
    db_drop "$1" "$3"
    case "$1" in
        postgres) pg_admin -c "CREATE DATABASE \"$3\" TEMPLATE \"$2\"" ;;
        sqlite)
            cp "$(sqlite_path "$2")" "$(sqlite_path "$3")"
            for suffix in -wal -shm; do
                if [ -f "$(sqlite_path "$2")$suffix" ]; then
                    cp "$(sqlite_path "$2")$suffix" "$(sqlite_path "$3")$suffix"
                fi
            done ;;
    esac
}

db_scalar() { # ENGINE NAME SQL
    case "$1" in
        postgres) psql -X -At -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$2" -c "$3" ;;
        sqlite) sqlite3 "$(sqlite_path "$2")" "$3" ;;
    esac
}

# The rows the backfill walks over: every row of the six tables that get a flow_id.
FLOW_TABLE_ROWS_SQL="SELECT (SELECT count(*) FROM data_imports) + (SELECT count(*) FROM raw_import_records)
 + (SELECT count(*) FROM import_field_mappings) + (SELECT count(*) FROM assets)
 + (SELECT count(*) FROM access_audit_log) + (SELECT count(*) FROM llm_usage_logs)"

fk() { # URL ARGS...
    local url=$1; shift
    "$FLOWKEY" --database-url "$url" "$@"
}

# timed NAME CMD...: runs CMD under /usr/bin/time -v; stdout/stderr/time files in $OUT;
# prints the wall seconds (measured around the process) on stdout.
timed() {
    local name=$1; shift
    if [ "$1" = fk ]; then # the shell function cannot run under /usr/bin/time
        shift
        set -- "$FLOWKEY" --database-url "$@"
    fi
    local start end
    start=$(date +%s.%N)
    if ! /usr/bin/time -v -o "$OUT/$name.time" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"; then
        echo "command failed: $* (see $OUT/$name.err)" >&2
        tail -5 "$OUT/$name.err" >&2
        return 1
    fi
    end=$(date +%s.%N)
    python3 -c "print(f'{$end - $start:.3f}')"
}

peak_rss_kb() { awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/$1.time"; }

max_lock_wait_ms() { # URL: the longest lock wait the runner recorded for any DDL step/statement
    fk "$1" --json audit --limit 100000 | python3 -c '
import json, sys
entries = json.load(sys.stdin)
waits = [float((e.get("details") or {}).get("lock_wait_ms") or 0) for e in entries]
print(max(waits, default=0))'
}

has_command() { "$FLOWKEY" "$1" --help > /dev/null 2>&1; }

bench_engine_size() { # ENGINE SIZE
    local engine=$1 size=$2
    local rows_per_import=$(( size / (TENANTS * IMPORTS_PER_TENANT) ))
    local base="fkb_${engine}_${size}"
    local seeded="${base}_seed"

    log "$engine $size: seeding ($TENANTS tenants x $IMPORTS_PER_TENANT imports x $rows_per_import rows)"
    db_create_empty "$engine" "$seeded"
    local seconds
    seconds=$(timed "$base.seed" fk "$(db_url "$engine" "$seeded")" seed --seed "$SEED" \
        --tenants "$TENANTS" --imports "$IMPORTS_PER_TENANT" --rows-per-import "$rows_per_import" --no-progress)
    record "$engine" "$size" seed_seconds "$seconds"
    local raw rows
    raw=$(db_scalar "$engine" "$seeded" "SELECT count(*) FROM raw_import_records")
    rows=$(db_scalar "$engine" "$seeded" "$FLOW_TABLE_ROWS_SQL")
    record "$engine" "$size" raw_import_records "$raw"
    record "$engine" "$size" flow_table_rows "$rows"

    if [ "$LOCK_ONLY" = 1 ]; then
        [ "$engine" = postgres ] && bench_lock_impact "$size" "$seeded" "$base"
        db_drop "$engine" "$seeded"
        return
    fi

    # (a) online backfill vs the offline UPDATE ... FROM, both from flow_expand.
    log "$engine $size: online backfill"
    db_copy "$engine" "$seeded" "${base}_online"
    local url
    url=$(db_url "$engine" "${base}_online")
    fk "$url" upgrade flow_expand --no-progress > "$OUT/$base.online_expand.out" 2>&1
    seconds=$(timed "$base.backfill_online" fk "$url" upgrade flow_backfill --no-progress)
    record "$engine" "$size" backfill_online_seconds "$seconds"
    record "$engine" "$size" backfill_online_peak_rss_kb "$(peak_rss_kb "$base.backfill_online")"
    fk "$url" --json audit --limit 100000 > "$OUT/$base.backfill_online.audit.json"
    # In-process figures from the audit log: the revision's own duration (no process start or
    # connect) and the raw_import_records table's rows/s as the backfill measured it.
    python3 - "$OUT/$base.backfill_online.audit.json" "$engine" "$size" >> "$RESULTS" <<'PY'
import json, sys
entries, engine, size = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
def emit(metric, value):
    print(json.dumps({"engine": engine, "size": size, "metric": metric, "value": value}))
for e in entries:
    d = e.get("details") or {}
    if e["event"] == "revision" and e.get("revision") == "flow_backfill" and e.get("duration_ms") is not None:
        emit("backfill_online_revision_seconds", e["duration_ms"] / 1000)
    if e["event"] == "progress" and d.get("table") == "raw_import_records" and "batches_this_run" in d:
        emit("backfill_online_raw_rows_per_second", round(d.get("rows_per_second", 0)))
PY
    db_drop "$engine" "${base}_online"

    log "$engine $size: offline UPDATE ... FROM"
    db_copy "$engine" "$seeded" "${base}_offline"
    url=$(db_url "$engine" "${base}_offline")
    fk "$url" upgrade flow_expand --no-progress > "$OUT/$base.offline_expand.out" 2>&1
    seconds=$(timed "$base.backfill_offline" fk "$url" --json bench offline-backfill)
    record "$engine" "$size" backfill_offline_seconds "$seconds"
    record "$engine" "$size" backfill_offline_sql_seconds \
        "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$OUT/$base.backfill_offline.out")"
    db_drop "$engine" "${base}_offline"

    # (b) whole upgrade head, (d) verify, (b) downgrade legacy: wall time and peak RSS.
    log "$engine $size: upgrade head / verify / downgrade legacy"
    db_copy "$engine" "$seeded" "${base}_whole"
    url=$(db_url "$engine" "${base}_whole")
    seconds=$(timed "$base.upgrade_head" fk "$url" upgrade head --no-progress)
    record "$engine" "$size" upgrade_head_seconds "$seconds"
    record "$engine" "$size" upgrade_head_peak_rss_kb "$(peak_rss_kb "$base.upgrade_head")"
    record "$engine" "$size" upgrade_head_max_ddl_lock_wait_ms "$(max_lock_wait_ms "$url")"
    if has_command verify; then
        seconds=$(timed "$base.verify" fk "$url" verify)
        record "$engine" "$size" verify_seconds "$seconds"
        record "$engine" "$size" verify_peak_rss_kb "$(peak_rss_kb "$base.verify")"
    fi
    seconds=$(timed "$base.downgrade_legacy" fk "$url" downgrade legacy --no-progress)
    record "$engine" "$size" downgrade_legacy_seconds "$seconds"
    record "$engine" "$size" downgrade_legacy_peak_rss_kb "$(peak_rss_kb "$base.downgrade_legacy")"
    db_drop "$engine" "${base}_whole"

    # (c) lock impact: the legacy load alone, then the same load while upgrade head runs.
    if [ "$engine" = postgres ] && [ "$SKIP_LOCK" = 0 ]; then
        bench_lock_impact "$size" "$seeded" "$base"
    fi

    db_drop "$engine" "$seeded"
}

# pgbench on the legacy schema: plain SQL by session_id, extended protocol (as an ORM does).
run_legacy_load() { # DBNAME SECONDS LOGPREFIX
    pgbench -n -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -M extended \
        -c "$CLIENTS" -j 2 -T "$2" -l --log-prefix="$3" \
        -f "$ROOT/bench/legacy_load/read.sql@3" -f "$ROOT/bench/legacy_load/write.sql@1" "$1"
}

bench_lock_impact() { # SIZE SEEDED BASE
    local size=$1 seeded=$2 base=$3
    local upgrade_seconds
    upgrade_seconds=$(python3 -c "
import json
for line in open('$RESULTS'):
    r = json.loads(line)
    if r['engine'] == 'postgres' and r['size'] == $size and r['metric'] == 'upgrade_head_seconds':
        print(r['value'])")
    # The load outlasts the migration; only transactions inside the migration's window count.
    local load_secs=$LOAD_SECS
    if [ -z "$load_secs" ]; then
        [ -n "$upgrade_seconds" ] || { echo "no upgrade_head_seconds for $size: pass --load-secs" >&2; return 1; }
        load_secs=$(python3 -c "import math; print(max(10, math.ceil($upgrade_seconds * 1.5 + 10)))")
    fi

    local alone_secs=${ALONE_SECS:-$load_secs}
    log "postgres $size: legacy load alone (${alone_secs}s)"
    db_copy postgres "$seeded" "${base}_loadonly"
    mkdir -p "$OUT/$base.load_alone"
    (cd "$OUT/$base.load_alone" && run_legacy_load "${base}_loadonly" "$alone_secs" load \
        > pgbench.out 2> pgbench.err) || true
    db_drop postgres "${base}_loadonly"

    log "postgres $size: legacy load during upgrade head (${load_secs}s)"
    db_copy postgres "$seeded" "${base}_loadmig"
    mkdir -p "$OUT/$base.load_migration"
    (cd "$OUT/$base.load_migration" && run_legacy_load "${base}_loadmig" "$load_secs" load \
        > pgbench.out 2> pgbench.err) &
    local load_pid=$!
    # Samples every backend waiting on a lock, 20 times a second, until the upgrade ends.
    printf '%s\n' "SELECT extract(epoch from clock_timestamp()), application_name, \
round(extract(epoch from clock_timestamp() - query_start) * 1000), left(regexp_replace(query, '\\s+', ' ', 'g'), 80) \
FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() \\watch 0.05" \
        | psql -X -At -F '|' -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "${base}_loadmig" \
        > "$OUT/$base.load_migration/lock_waits.txt" 2>/dev/null &
    local monitor_pid=$!
    sleep 2
    local url start end
    url=$(pg_url "${base}_loadmig")
    start=$(date +%s.%N)
    local status=ok
    timed "$base.upgrade_head_under_load" fk "$url" upgrade head --no-progress > /dev/null || status=failed
    end=$(date +%s.%N)
    record postgres "$size" upgrade_head_under_load_ok "$([ "$status" = ok ] && echo 1 || echo 0)"
    record postgres "$size" upgrade_head_under_load_seconds "$(python3 -c "print(f'{$end - $start:.3f}')")"
    record postgres "$size" upgrade_head_under_load_max_ddl_lock_wait_ms "$(max_lock_wait_ms "$url")"
    wait "$load_pid" || true
    kill "$monitor_pid" 2> /dev/null || true
    wait "$monitor_pid" 2> /dev/null || true
    python3 "$ROOT/bench/load_stats.py" --engine postgres --size "$size" \
        --alone "$OUT/$base.load_alone" --migration "$OUT/$base.load_migration" \
        --window "$start" "$end" >> "$RESULTS"
    db_drop postgres "${base}_loadmig"
}

machine_info() {
    {
        echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) $(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo '(dirty)')"
        echo "nproc: $(nproc)"
        echo "cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
        echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
        echo "postgres: $(psql -X -At -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -c 'SHOW server_version')"
        echo "postgres shared_buffers: $(psql -X -At -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -c 'SHOW shared_buffers')"
        echo "sqlite (sqlx bundled libsqlite3): see Cargo.lock libsqlite3-sys; sqlite3 CLI $(sqlite3 --version | cut -d' ' -f1)"
        echo "load average at start: $(cut -d" " -f1-3 /proc/loadavg) (other processes share the machine)"
        echo "sizes: $SIZES  engines: $ENGINES  clients: $CLIENTS"
    } > "$OUT/machine.txt"
}

# shape_seed_args SHAPE SIZE: `flowkey seed` options giving SIZE raw records in that shape.
shape_seed_args() {
    local shape=$1 size=$2
    case "$shape" in
        # bench/run.sh's own default: 4 tenants x 25 imports, 13 field mappings per import.
        default) echo "--tenants 4 --imports 25 --rows-per-import $(( size / 100 ))" ;;
        # issue 13's: one import per session, 10k sessions, 10 field mappings per import,
        # an asset per 10 rows, 5 access and 5 LLM log rows per import.
        issue13) echo "--tenants 10 --imports 1000 --rows-per-import $(( size / 10000 )) \
            --field-mappings-per-import 10 --access-logs-per-import 5 --llm-logs-per-import 5" ;;
        # many small imports: 10 rows each (100k imports and sessions at 1M).
        small-imports) echo "--tenants 10 --imports $(( size / 100 )) --rows-per-import 10 \
            --field-mappings-per-import 3 --access-logs-per-import 1 --llm-logs-per-import 1" ;;
        # few huge imports: 10 imports of size/10 rows.
        huge-imports) echo "--tenants 2 --imports 5 --rows-per-import $(( size / 10 ))" ;;
        # many field mappings per import: 2,000 (200k at any size, over 100 imports).
        many-mappings) echo "--tenants 4 --imports 25 --rows-per-import $(( size / 100 )) \
            --field-mappings-per-import 2000" ;;
        # half the sessions have data but no flow.
        no-flow-sessions) echo "--tenants 4 --imports 25 --rows-per-import $(( size / 100 )) \
            --rate-session-without-flow 0.5" ;;
        # half the linked flows were created under the placeholder tenant.
        placeholder) echo "--tenants 4 --imports 25 --rows-per-import $(( size / 100 )) \
            --rate-flow-under-placeholder-tenant 0.5" ;;
        *) echo "unknown shape $shape" >&2; return 1 ;;
    esac
}

record_shape() { # ENGINE SIZE SHAPE METRIC VALUE
    printf '{"engine":"%s","size":%s,"shape":"%s","metric":"%s","value":%s}\n' "$1" "$2" "$3" "$4" "$5" >> "$RESULTS"
}

# bench_shape ENGINE SIZE SHAPE: seed once; on identical copies, the naive offline migration
# and the whole `upgrade head` (fingerprints and verify included); the per-step split from
# the audit log; the fingerprint against count(*) on the seeded copy.
bench_shape() {
    local engine=$1 size=$2 shape=$3
    local base="fks_${engine}_${size}_${shape//-/_}"
    local seeded="${base}_seed" url seconds
    log "$engine $size $shape: seeding"
    db_create_empty "$engine" "$seeded"
    # shellcheck disable=SC2046 # the shape's options are words
    seconds=$(timed "$base.seed" fk "$(db_url "$engine" "$seeded")" seed --seed "$SEED" --no-progress \
        $(shape_seed_args "$shape" "$size"))
    record_shape "$engine" "$size" "$shape" seed_seconds "$seconds"
    for table in raw_import_records import_field_mappings data_imports data_import_sessions assets; do
        record_shape "$engine" "$size" "$shape" "rows_$table" "$(db_scalar "$engine" "$seeded" "SELECT count(*) FROM $table")"
    done
    if [ "$engine" = postgres ]; then
        # A restored or freshly loaded database: statistics as autovacuum would leave them.
        db_scalar postgres "$seeded" "VACUUM ANALYZE" > /dev/null
    fi

    log "$engine $size $shape: fingerprint against count(*)"
    timed "$base.fingerprint_bench" fk "$(db_url "$engine" "$seeded")" --json bench fingerprint --repeats 2 > /dev/null
    python3 - "$OUT/$base.fingerprint_bench.out" "$engine" "$size" "$shape" >> "$RESULTS" <<'PY'
import json, sys
speed, engine, size, shape = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3]), sys.argv[4]
for metric in ("count_seconds", "table_scan_seconds", "fingerprint_seconds"):
    print(json.dumps({"engine": engine, "size": size, "shape": shape, "metric": "fpbench_" + metric, "value": speed[metric]}))
PY

    log "$engine $size $shape: naive offline migration"
    db_copy "$engine" "$seeded" "${base}_naive"
    seconds=$(timed "$base.naive" fk "$(db_url "$engine" "${base}_naive")" --json bench naive-offline)
    record_shape "$engine" "$size" "$shape" naive_seconds "$seconds"
    record_shape "$engine" "$size" "$shape" naive_peak_rss_kb "$(peak_rss_kb "$base.naive")"
    db_drop "$engine" "${base}_naive"

    log "$engine $size $shape: upgrade head"
    db_copy "$engine" "$seeded" "${base}_whole"
    url=$(db_url "$engine" "${base}_whole")
    if seconds=$(timed "$base.upgrade_head" timeout "$SHAPE_TIMEOUT" "$FLOWKEY" --database-url "$url" upgrade head --no-progress); then
        record_shape "$engine" "$size" "$shape" upgrade_head_seconds "$seconds"
    else
        log "$engine $size $shape: upgrade head failed or ran over ${SHAPE_TIMEOUT}s (recorded as timed out)"
        record_shape "$engine" "$size" "$shape" upgrade_head_timed_out_after_seconds "$SHAPE_TIMEOUT"
    fi
    record_shape "$engine" "$size" "$shape" upgrade_head_peak_rss_kb "$(peak_rss_kb "$base.upgrade_head")"
    fk "$url" --json audit --limit 100000 > "$OUT/$base.upgrade_head.audit.json"
    python3 - "$OUT/$base.upgrade_head.audit.json" "$engine" "$size" "$shape" >> "$RESULTS" <<'PY'
import json, sys
entries, engine, size, shape = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3]), sys.argv[4]
def emit(metric, value):
    print(json.dumps({"engine": engine, "size": size, "shape": shape, "metric": metric, "value": value}))
for e in entries:
    d = e.get("details") or {}
    if e["event"] == "step" and e.get("direction") == "up" and e.get("duration_ms") is not None \
            and e.get("revision") != "legacy":
        emit(f"step:{e['revision']}/{e['step']}", e["duration_ms"] / 1000)
    if e["event"] == "progress" and d.get("batches_this_run") is not None and d.get("table"):
        emit(f"backfill_rows_per_second:{d['table']}", round(d.get("rows_per_second", 0)))
PY
    db_drop "$engine" "${base}_whole"
    db_drop "$engine" "$seeded"
}

machine_info
if [ -n "$SHAPES" ]; then
    [ "$SHAPES" = all ] && SHAPES=default,issue13,small-imports,huge-imports,many-mappings,no-flow-sessions,placeholder
    IFS=, read -r -a shape_list <<< "$SHAPES"
    IFS=, read -r -a size_list <<< "$SIZES"
    IFS=, read -r -a engine_list <<< "$ENGINES"
    # One engine at a time: every shape on the first engine, then the next.
    for engine in "${engine_list[@]}"; do
        for size in "${size_list[@]}"; do
            for shape in "${shape_list[@]}"; do
                bench_shape "$engine" "$size" "$shape"
            done
        done
    done
    python3 "$ROOT/bench/shapes_report.py" "$OUT" > "$OUT/results.md"
    cat "$OUT/results.md"
    log "results in $OUT (results.jsonl, results.md, raw outputs)"
    exit 0
fi
IFS=, read -r -a size_list <<< "$SIZES"
IFS=, read -r -a engine_list <<< "$ENGINES"
for size in "${size_list[@]}"; do
    for engine in "${engine_list[@]}"; do
        bench_engine_size "$engine" "$size"
    done
done

if [ "$SKIP_HTTP" = 0 ]; then
    if has_command serve; then
        for engine in "${engine_list[@]}"; do
            bash "$ROOT/bench/http.sh" "$engine" "$OUT" "$HTTP_SECS" "$CLIENTS" >> "$RESULTS" \
                || log "http benchmark on $engine failed (see $OUT/http.*)"
        done
    else
        log "no \`flowkey serve\` in this build: skipping the compatibility overhead figures"
    fi
fi

python3 "$ROOT/bench/report.py" "$OUT" > "$OUT/results.md"
cat "$OUT/results.md"
log "results in $OUT (results.jsonl, results.md, raw outputs)"
