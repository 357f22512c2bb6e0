#!/usr/bin/env bash
# Reproduction (PostgreSQL): `flowkey serve` while its database is gone.
#
#   bash reliability/service-outage.sh [FLOWKEY_BINARY]
#
# Seeds a database, upgrades it to head, starts `flowkey serve` on loopback, then takes the
# database away without touching the shared server (ALTER DATABASE ... ALLOW_CONNECTIONS false
# and pg_terminate_backend of the server's connections), sends requests, gives the database
# back and checks the server recovers without a restart.
# Expected (issue 6): 503 on every data route while the database is gone, 200 again after.
# Exit 0 when so, 1 otherwise.
#
# Last result (2026-11-26): /ready answers 503 and /health 200 (good), the server recovers by
# itself within ~100 ms of the database coming back (good), but every data route answers
# 500 internal_error while the database is gone; the server logs
#   cause=error returned from database: database "..." is not currently accepting connections Cause: src/http/error.rs,
# `impl From<sqlx::Error> for ApiError` maps only PoolTimedOut and PoolClosed to 503; a
# refused or dropped connection is sqlx::Error::Io / ::Database (SQLSTATE 57P01
# admin_shutdown, 55000/57P03 "database does not allow connections", 08xxx connection
# exceptions) / ::Protocol and becomes a 500. Suggested fix: map Io, Tls, Protocol, and
# Database errors whose SQLSTATE class is 08 or 57 to 503 database_unavailable.
set -uo pipefail
cd "$(dirname "$0")/.."
flowkey="${1:-target/debug/flowkey}"
[ -x "$flowkey" ] || cargo build --quiet
admin="${FLOWKEY_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
name="flowkey_outage_$$"
url="${admin%/*}/$name"
port=$(( 20000 + $$ % 20000 ))
base="http://127.0.0.1:$port"
psql -q "$admin" -c "CREATE DATABASE $name" || exit 1
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null
  psql -q "$admin" -c "ALTER DATABASE $name ALLOW_CONNECTIONS true" 2>/dev/null
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null
}
trap cleanup EXIT
"$flowkey" --database-url "$url" seed --no-progress >/dev/null
"$flowkey" --database-url "$url" upgrade head --no-progress >/dev/null 2>&1
read -r client engagement flow < <(psql -qtA -F ' ' "$url" -c \
  "SELECT client_account_id, engagement_id, flow_id FROM discovery_flows WHERE flow_id IN (SELECT flow_id FROM data_imports) LIMIT 1")
"$flowkey" --database-url "$url" serve --bind "127.0.0.1:$port" 2>/tmp/flowkey-outage-serve.log &
server=$!
for _ in $(seq 1 200); do curl -fs "$base/health" >/dev/null && break; sleep 0.05; done
ask() { curl -s -o /dev/null -w "%{http_code}" -H "X-Client-Account-Id: $client" -H "X-Engagement-Id: $engagement" "$base$1"; }
routes=("/api/v3/discovery-flow/flows/$flow" "/api/v3/data-import/imports" "/ready")
echo "before: $(for r in "${routes[@]}"; do printf '%s=%s ' "$r" "$(ask "$r")"; done)"
psql -q "$admin" -c "ALTER DATABASE $name ALLOW_CONNECTIONS false"
psql -qtA "$admin" -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '$name'" >/dev/null
during=$(for r in "${routes[@]}"; do printf '%s=%s ' "$r" "$(ask "$r")"; done)
echo "during: $during  /health=$(ask /health)"
psql -q "$admin" -c "ALTER DATABASE $name ALLOW_CONNECTIONS true"
after=""
for _ in $(seq 1 100); do
  after=$(for r in "${routes[@]}"; do printf '%s=%s ' "$r" "$(ask "$r")"; done)
  case "$after" in *=5*|*=4*) sleep 0.1 ;; *) break ;; esac
done
echo "after:  $after"
case "$during" in *=500*|*=200*) exit 1 ;; esac
case "$after" in *=5*) exit 1 ;; esac
exit 0
