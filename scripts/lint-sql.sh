#!/usr/bin/env bash
# Lints the PostgreSQL script `flowkey upgrade head --sql` prints (and the downgrade's) with
# squawk (https://squawkhq.com), the linter for PostgreSQL migrations.
# Install: `npm install -g squawk-cli` (or `pip install squawk-cli`).
# usage: scripts/lint-sql.sh [FLOWKEY_BINARY]   (default: target/debug/flowkey)
# Exit status: squawk's (non-zero on any finding); 2 when squawk is not installed.
set -euo pipefail
flowkey=${1:-target/debug/flowkey}
if ! command -v squawk >/dev/null; then
    echo "squawk is not installed: npm install -g squawk-cli (or pip install squawk-cli)" >&2
    exit 2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$flowkey" upgrade head --sql --engine postgres > "$out/upgrade.sql"
"$flowkey" downgrade legacy --sql --engine postgres > "$out/downgrade.sql"
# PostgreSQL 15 is what flowkey supports (SET NOT NULL skips its scan behind a validated
# CHECK from 12 on).
squawk --pg-version 15 "$out/upgrade.sql" "$out/downgrade.sql"
