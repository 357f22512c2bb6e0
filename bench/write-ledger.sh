#!/usr/bin/env bash
# The write ledger's figures (issue 12, item 4): per engine and size, on a database seeded with
# SIZE raw records: `upgrade legacy_write_signal` then `upgrade head` (= the write_ledger
# revision: triggers and the per-row baseline; its share of the whole upgrade), `verify` (the
# exact proof) and `verify --online` (the ledger) against a `SELECT count(*)` of every legacy
# table, all on the same database in the same run; then the ledger's cost on an old-code INSERT
# (ratio to every other trigger alone, same run, `flowkey bench ledger-write`).
#
#   bash bench/write-ledger.sh [--sizes 1000000] [--engines postgres,sqlite] [--out DIR]
#
# Needs target/release/flowkey (cargo build --release), /usr/bin/time, psql, sqlite3, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT_PREFIX=flowkey-ledger-bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_options "$@"

count_scan() { # ENGINE URL FILE: seconds for a count(*) of every legacy table, best of 3
    local tables="client_accounts engagements users data_import_sessions data_imports assets raw_import_records import_field_mappings discovery_flows access_audit_log flow_deletion_audit llm_usage_logs"
    local best=999999 start end took
    for _ in 1 2 3; do
        start=$(date +%s.%N)
        for t in $tables; do
            case "$1" in
                postgres) psql -X -At "$2" -c "SELECT count(*) FROM $t" > /dev/null ;;
                sqlite) sqlite3 "$3" "SELECT count(*) FROM $t" > /dev/null ;;
            esac
        done
        end=$(date +%s.%N)
        took=$(python3 -c "print(f'{$end - $start:.3f}')")
        best=$(python3 -c "print(min($best, $took))")
    done
    echo "$best"
}

baseline_step_s() { # URL: the baseline step's seconds from the audit log
    "$FLOWKEY" --database-url "$1" --json audit --limit 100000 | python3 -c '
import json, sys
entries = json.load(sys.stdin)
ms = [float(e.get("duration_ms") or 0) for e in entries
      if e.get("revision") == "write_ledger" and e.get("event") == "step" and "hash" in (e.get("step") or "")]
print(f"{max(ms, default=0) / 1000:.2f}")'
}

echo "| engine | raw records | upgrade to legacy_write_signal s | upgrade head (write_ledger) s | of which baseline s | ledger RSS MiB | count(*) s | verify s (x count) | verify --online s (x count) | verify --online RSS MiB | old-code INSERT us: without / with ledger, ratio |" > "$OUT/table.md"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|" >> "$OUT/table.md"
for engine in ${ENGINES//,/ }; do
    for size in ${SIZES//,/ }; do
        name="fkl_${engine}_${size}"
        url=$(fresh_database "$engine" "$name")
        file=""
        if [ "$engine" = sqlite ]; then file="$OUT/$name.db"; fi
        log "$engine $size: seed"
        "$FLOWKEY" --database-url "$url" seed --tenants 4 --imports 25 --rows-per-import $(( size / 100 )) --no-progress > /dev/null
        log "$engine $size: upgrade legacy_write_signal"
        read -r up1_s _ < <(timed "$name.up1" "$url" upgrade legacy_write_signal --no-progress)
        log "$engine $size: upgrade head (write_ledger)"
        read -r up2_s up2_rss < <(timed "$name.up2" "$url" upgrade head --no-progress)
        base_s=$(baseline_step_s "$url")
        log "$engine $size: count(*), verify, verify --online"
        scan_s=$(count_scan "$engine" "$url" "$file")
        read -r v_s _ < <(timed "$name.verify" "$url" verify)
        read -r o_s o_rss < <(timed "$name.online" "$url" verify --online)
        grep -q "verify failed" "$OUT/$name.online.err" && { log "verify --online failed: $(tail -1 "$OUT/$name.online.err")"; exit 1; }
        cost=$("$FLOWKEY" --database-url "$url" --json bench ledger-write --rows 2000 --rounds 7 |
            python3 -c 'import json,sys; c=json.load(sys.stdin); print("%.1f / %.1f, %.2fx" % (c["without_ledger_us"], c["with_ledger_us"], c["ratio"]))')
        ratio() { python3 -c "print(f'{$1:.2f} ({$1 / max($2, 1e-9):.0f}x)')"; }
        echo "| $engine | $size | $up1_s | $up2_s | $base_s | $up2_rss | $scan_s | $(ratio "$v_s" "$scan_s") | $(ratio "$o_s" "$scan_s") | $o_rss | $cost |" >> "$OUT/table.md"
        drop_database "$engine" "$name"
    done
done
cat "$OUT/table.md"
