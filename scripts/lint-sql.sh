#!/usr/bin/env bash
# Lints the runnable PostgreSQL scripts flowkey prints (`--sql`) with squawk
# (https://squawkhq.com), the linter for PostgreSQL migrations: upgrade from an empty database
# and from legacy to head, the contract and its way down, downgrade to legacy and to base.
# Every deliberate exception is written into the script itself, a comment saying why on the
# line before `-- squawk-ignore <rule>` (src/migrate/lint.rs); any other finding fails.
# squawk: the one on PATH, else squawk-cli (a binary wheel, pinned) from PyPI in a throwaway
# virtual environment.
# usage: scripts/lint-sql.sh [FLOWKEY_BINARY]   (default: target/debug/flowkey)
# Exit status: 0 when every finding is excused, 1 on any other finding or failure.
set -euo pipefail
cd "$(dirname "$0")/.."
flowkey=$(realpath "${1:-target/debug/flowkey}")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
squawk=$(command -v squawk || true)
if [[ -z "$squawk" ]]; then
    echo "lint-sql: installing squawk-cli into a throwaway virtual environment" >&2
    python3 -m venv "$out/venv"
    "$out/venv/bin/pip" install -q --disable-pip-version-check 'squawk-cli==2.70.0' >&2
    squawk="$out/venv/bin/squawk"
fi
"$flowkey" upgrade head --sql --engine postgres > "$out/upgrade-from-base.sql"
"$flowkey" upgrade head --sql --engine postgres --from legacy > "$out/upgrade-from-legacy.sql"
"$flowkey" upgrade flow_contract --sql --engine postgres --from head > "$out/contract.sql"
"$flowkey" downgrade -1 --sql --engine postgres --from flow_contract > "$out/contract-down.sql"
"$flowkey" downgrade legacy --sql --engine postgres > "$out/downgrade-to-legacy.sql"
"$flowkey" downgrade base --sql --engine postgres > "$out/downgrade-to-base.sql"
# PostgreSQL 15 is what flowkey supports (SET NOT NULL skips its scan behind a validated
# CHECK from 12 on). squawk exits 1 on any finding not excused in the script.
"$squawk" --pg-version 15 "$out"/*.sql
echo "lint-sql: no finding but the excused ones in $(ls "$out"/*.sql | wc -l) scripts" >&2
