#!/usr/bin/env bash
# Standby lag during the backfill, with and without the replica-lag throttle (issue 15): a
# private primary and a streaming standby (`pg_basebackup -R`) on free ports, SIZE raw records
# seeded into one database and copied (CREATE DATABASE … TEMPLATE), both taken to
# flow_expand, then `upgrade flow_backfill` on each: one with `--max-replica-lag 0` (never
# waits), the other with `--max-replica-lag LIMIT`. Lag is sampled every 100 ms from the primary's
# pg_stat_replication (replay_lag, and the bytes the standby has not replayed). Prints the
# backfill's wall time, rows/s ratio (throttled / unthrottled) and the largest lag of each run.
#
#   bash bench/standby-lag.sh [SIZE=1000000] [LIMIT_SECONDS=1] [APPLY_DELAY=0ms]
#
# APPLY_DELAY sets the standby's recovery_min_apply_delay (a slow standby). Needs
# target/release/flowkey (or FLOWKEY=...), PostgreSQL 15 binaries, runs as root via runuser.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1000000}
LIMIT=${2:-1}
APPLY_DELAY=${3:-0ms}
FLOWKEY=${FLOWKEY:-$(pwd)/target/release/flowkey}
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d /tmp/flowkey-standby.XXXX)
chown postgres "$WORK"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P1=$(free_port); P2=$(free_port)
cleanup() {
    kill "${SAMPLER:-}" 2>/dev/null || true
    as_pg "$BIN/pg_ctl" -D "$WORK/standby" -m immediate stop >/dev/null 2>&1 || true
    as_pg "$BIN/pg_ctl" -D "$WORK/primary" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

as_pg "$BIN/initdb" -D "$WORK/primary" -A trust -U postgres >/dev/null
as_pg "$BIN/pg_ctl" -D "$WORK/primary" -o "-p $P1 -k $WORK -c listen_addresses=127.0.0.1" -l "$WORK/primary.log" -w start >/dev/null
as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$P1" -U postgres -D "$WORK/standby" -R -X stream >/dev/null
as_pg "$BIN/pg_ctl" -D "$WORK/standby" -o "-p $P2 -k $WORK -c listen_addresses=127.0.0.1 -c recovery_min_apply_delay=$APPLY_DELAY" -l "$WORK/standby.log" -w start >/dev/null
BASE="postgres://postgres@127.0.0.1:$P1"
psql_p() { psql -X -At -h 127.0.0.1 -p "$P1" -U postgres -d postgres "$@"; }

log "seed $SIZE raw records, copy"
psql_p -c "CREATE DATABASE fk_unthrottled" >/dev/null
"$FLOWKEY" --database-url "$BASE/fk_unthrottled" seed --tenants 4 --imports 25 --rows-per-import $(( SIZE / 100 )) --no-progress >/dev/null
psql_p -c "CREATE DATABASE fk_throttled TEMPLATE fk_unthrottled" >/dev/null
for name in fk_unthrottled fk_throttled; do
    "$FLOWKEY" --database-url "$BASE/$name" upgrade flow_expand --no-progress >/dev/null 2>&1
done
psql_p -c "CHECKPOINT" >/dev/null

sample() { # OUTFILE: max replay lag (ms) and unreplayed bytes, every 100 ms
    while true; do
        psql_p -c "SELECT COALESCE(EXTRACT(epoch FROM replay_lag) * 1000, 0)::bigint, \
            COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint FROM pg_stat_replication" >> "$1" 2>/dev/null || true
        sleep 0.1
    done
}

run() { # NAME MAX_REPLICA_LAG
    local name=$1 lag=$2
    local URL="$BASE/fk_$name"
    : > "$WORK/$name.lag"
    sample "$WORK/$name.lag" & SAMPLER=$!
    local start end
    start=$(date +%s.%N)
    "$FLOWKEY" --database-url "$URL" upgrade flow_backfill --no-progress --max-replica-lag "$lag" >/dev/null 2>"$WORK/$name.err"
    end=$(date +%s.%N)
    kill "$SAMPLER"; wait "$SAMPLER" 2>/dev/null || true
    local throttled
    throttled=$("$FLOWKEY" --database-url "$URL" --json audit --limit 100000 | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin) if e.get("event") == "throttled"))')
    python3 - "$WORK/$name.lag" "$start" "$end" "$name" "$throttled" <<'PY'
import sys
path, start, end, name, throttled = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = [tuple(int(x) for x in l.split("|")) for l in open(path) if "|" in l]
lag_ms = max((r[0] for r in rows), default=0)
lag_bytes = max((r[1] for r in rows), default=0)
print(f"{name}: backfill {end - start:.1f} s, max replay lag {lag_ms} ms, max unreplayed {lag_bytes / 1e6:.1f} MB, samples {len(rows)}, throttled waits (audit, cumulative) {throttled}")
PY
    echo "$(python3 -c "print($end - $start)")" > "$WORK/$name.secs"
}

log "backfill without the throttle"
run unthrottled 0
log "backfill with --max-replica-lag $LIMIT"
run throttled "$LIMIT"
python3 -c "
off = float(open('$WORK/unthrottled.secs').read()); on = float(open('$WORK/throttled.secs').read())
print(f'rows/s with the throttle on / off: {off / on:.2f}x (standby apply delay $APPLY_DELAY, limit ${LIMIT} s, $SIZE raw records)')"
