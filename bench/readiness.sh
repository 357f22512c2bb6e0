#!/usr/bin/env bash
# Readiness while the old application writes (issue 12, item 4): per engine, size and data
# shape, on a database seeded with SIZE raw records and upgraded to head, `flowkey bench
# readiness`: a `count(*)` of the linked tables and the full link checks (best of 3), then
# --sessions sessions written the old application's way (each with its flow, an import and
# --records raw records), then readiness from the stored checks and the delta (best of 3);
# all on the same database in the same run.
#
#   bash bench/readiness.sh [--sizes 1000000] [--engines postgres,sqlite] [--out DIR]
#
# Shapes (bench/run.sh's): issue13 (10k sessions) and small-imports (100k sessions: the
# largest mapping and basis). Needs target/release/flowkey, psql, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT_PREFIX=flowkey-readiness-bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_options "$@"
SESSIONS=${READINESS_SESSIONS:-200}
RECORDS=${READINESS_RECORDS:-10}

seed_args() { # SHAPE SIZE: bench/run.sh's seed options for that shape
    case "$1" in
        issue13) echo "--tenants 10 --imports 1000 --rows-per-import $(( $2 / 10000 )) \
            --field-mappings-per-import 10 --access-logs-per-import 5 --llm-logs-per-import 5" ;;
        small-imports) echo "--tenants 10 --imports $(( $2 / 100 )) --rows-per-import 10 \
            --field-mappings-per-import 3 --access-logs-per-import 1 --llm-logs-per-import 1" ;;
    esac
}

echo "| engine | shape | linked rows | count(*) s | full checks s | old-code sessions written | readiness s | from | rows checked by the delta | readiness / full checks | readiness / count |" > "$OUT/table.md"
echo "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|" >> "$OUT/table.md"
for engine in ${ENGINES//,/ }; do
    for size in ${SIZES//,/ }; do
        for shape in issue13 small-imports; do
            name="fkr_${engine}_${size}_${shape//-/_}"
            url=$(fresh_database "$engine" "$name")
            log "$engine $size $shape: seed"
            # shellcheck disable=SC2046 # the shape's options are words
            timed "$name.seed" "$url" seed --no-progress --seed 42 $(seed_args "$shape" "$size") > /dev/null
            log "$engine $size $shape: upgrade head"
            timed "$name.upgrade" "$url" upgrade head --no-progress > /dev/null
            log "$engine $size $shape: bench readiness"
            "$FLOWKEY" --database-url "$url" --json bench readiness --sessions "$SESSIONS" \
                --records "$RECORDS" --repeats 3 > "$OUT/$name.json"
            python3 - "$engine" "$shape" "$OUT/$name.json" >> "$OUT/table.md" <<'EOF'
import json, sys
engine, shape, path = sys.argv[1:]
c = json.load(open(path))
print(f"| {engine} | {shape} | {c['rows']} | {c['count_seconds']:.3f} | {c['full_check_seconds']:.3f} | "
      f"{c['sessions_written']} x {c['records_per_session']} | {c['readiness_seconds']:.3f} | {c['readiness_from']} | "
      f"{c['delta_rows_checked']} | {c['readiness_vs_full_check']:.3f} | {c['readiness_vs_count']:.2f} |")
EOF
            drop_database "$engine" "$name"
        done
    done
done
cat "$OUT/table.md"
