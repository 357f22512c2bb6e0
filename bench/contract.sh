#!/usr/bin/env bash
# The contract's figures (issue 14): per engine and size, on a database seeded with SIZE raw
# records and upgraded to head with the flag on, the legacy-write signal's cost on an old-code
# INSERT (ratio to the dual-write trigger alone, same run), then `flowkey contract` and its
# `flowkey downgrade -1`: wall time, peak RSS, the archive's rows and bytes, and on PostgreSQL
# the longest lock wait the runner recorded. (That every legacy value comes back is what the
# tests prove: tests/it/migrate/contract.rs and reliability::crash.)
#
#   bash bench/contract.sh [--sizes 1000000] [--engines postgres,sqlite] [--out DIR]
#
# Needs target/release/flowkey (cargo build --release), /usr/bin/time, psql, sqlite3, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT_PREFIX=flowkey-contract-bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_options "$@"

max_lock_wait_ms() {
    "$FLOWKEY" --database-url "$1" --json audit --limit 100000 | python3 -c '
import json, sys
entries = json.load(sys.stdin)
waits = [float((e.get("details") or {}).get("lock_wait_ms") or 0) for e in entries if e.get("revision") == "flow_contract"]
print(max(waits, default=0))'
}

echo "| engine | raw records | signal cost (INSERT us: trigger / +signal, ratio) | contract s | contract RSS MiB | archive rows | archive bytes | longest lock wait ms | downgrade -1 s | downgrade RSS MiB |" > "$OUT/table.md"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|" >> "$OUT/table.md"
for engine in ${ENGINES//,/ }; do
    for size in ${SIZES//,/ }; do
        name="fkc_${engine}_${size}"
        url=$(fresh_database "$engine" "$name")
        log "$engine $size: seed"
        "$FLOWKEY" --database-url "$url" seed --tenants 4 --imports 25 --rows-per-import $(( size / 100 )) --no-progress > /dev/null
        log "$engine $size: upgrade head"
        "$FLOWKEY" --database-url "$url" upgrade head --no-progress > /dev/null 2>&1
        "$FLOWKEY" --database-url "$url" flag set enable_flow_id_primary on > /dev/null
        signal=$("$FLOWKEY" --database-url "$url" --json bench legacy-signal --rows 2000 --rounds 7 |
            python3 -c 'import json,sys; c=json.load(sys.stdin); print("%.1f / %.1f, %.2fx" % (c["dual_write_only_us"], c["with_signal_us"], c["ratio"]))')
        log "$engine $size: contract"
        read -r c_s c_rss < <(timed "$name.contract" "$url" contract --quiet-period 0s --no-progress)
        case "$engine" in
            postgres) read -r a_rows a_bytes < <(psql -X -At -F' ' "$url" -c "SELECT count(*), pg_total_relation_size('flowkey_contract_archive') FROM flowkey_contract_archive") ;;
            sqlite) read -r a_rows a_bytes < <(sqlite3 -separator ' ' "$OUT/$name.db" "SELECT count(*), (SELECT sum(pgsize) FROM dbstat WHERE name LIKE '%contract_archive%') FROM flowkey_contract_archive" 2>/dev/null ||
                sqlite3 -separator ' ' "$OUT/$name.db" "SELECT count(*), sum(length(row_id) + coalesce(length(session_value), 0)) FROM flowkey_contract_archive") ;;
        esac
        wait_ms=$( [ "$engine" = postgres ] && max_lock_wait_ms "$url" || echo "-")
        log "$engine $size: downgrade -1"
        read -r d_s d_rss < <(timed "$name.downgrade" "$url" downgrade -1 --no-progress)
        echo "| $engine | $size | $signal | $c_s | $c_rss | $a_rows | ${a_bytes:-?} | $wait_ms | $d_s | $d_rss |" >> "$OUT/table.md"
        drop_database "$engine" "$name"
    done
done
cat "$OUT/table.md"
