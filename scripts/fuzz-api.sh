#!/usr/bin/env bash
# The API under an outside fuzzer: schemathesis (from PyPI, in a throwaway virtualenv) drives
# a real `flowkey serve` on a seeded database, once on SQLite and once on PostgreSQL, with
# every check that says the server keeps its OpenAPI document: no 5xx, no undocumented
# status, every response in its schema, no schema-valid request refused, schema-invalid
# requests refused. Bounded: FLOWKEY_FUZZ_MAX_TIME seconds per engine (default 120).
#
# Usage: scripts/fuzz-api.sh [BINARY]   (default target/debug/flowkey, as `cargo test` builds it)
# Needs FLOWKEY_TEST_PG_URL (scripts/ensure-postgres.sh prints one) and python3.11.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=${1:-target/debug/flowkey}
max_time=${FLOWKEY_FUZZ_MAX_TIME:-120}
examples=${FLOWKEY_FUZZ_EXAMPLES:-40}
pg_admin=${FLOWKEY_TEST_PG_URL:?set FLOWKEY_TEST_PG_URL (scripts/ensure-postgres.sh prints one)}
schemathesis_version=4.32.5
token=fuzz-admin-token-0123456789abcdef
jwt_secret=fuzz-jwt-secret-0123456789abcdef0123

work=$(mktemp -d)
server_pid=""
pg_name=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [[ -n "$pg_name" ]]; then psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $pg_name WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

python=$(command -v python3.11 || command -v python3)
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$schemathesis_version"

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

failed=0
for engine in sqlite postgres; do
  started=$(date +%s)
  if [[ $engine == sqlite ]]; then
    url="sqlite://$work/fuzz.db"
  else
    # Named like the test harness's databases (flowkey_test_<pid>_…), so a killed run's
    # leftover is dropped by the next scripts/test.sh.
    pg_name="flowkey_test_$$_fuzz_$RANDOM"
    psql "$pg_admin" -qc "CREATE DATABASE $pg_name" >/dev/null
    url=$("$python" -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path="/" + sys.argv[2]).geturl())' "$pg_admin" "$pg_name")
  fi
  "$binary" --database-url "$url" seed --tenants 3 --imports 4 --rows-per-import 10 --no-progress >/dev/null
  "$binary" --database-url "$url" upgrade head >/dev/null
  "$python" scripts/fuzz_config.py "$engine" "$url" "$work/schemathesis.toml" "$jwt_secret" "$token"

  port=$(free_port)
  # Authenticated as deployed: every tenant route demands the JWT minted by fuzz_config.py.
  FLOWKEY_ADMIN_TOKEN=$token FLOWKEY_FLAG_POLL_MS=500 \
    FLOWKEY_AUTH=jwt FLOWKEY_JWT_SECRET=$jwt_secret FLOWKEY_GRANTS=claims \
    "$binary" --database-url "$url" serve --bind "127.0.0.1:$port" >"$work/serve-$engine.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.2
  done

  echo "== fuzz ($engine): schemathesis $schemathesis_version, at most ${max_time}s"
  set +e
  (cd "$work" && "$work/venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run \
    "http://127.0.0.1:$port/openapi.json" \
    --phases examples,coverage,fuzzing \
    --max-examples "$examples" \
    --max-time "$max_time" \
    --seed 17 \
    --generation-database none \
    --request-timeout 30 \
    --no-color \
    --report junit --report-dir "$work/report" >"$work/fuzz-$engine.txt" 2>&1)
  status=$?
  set -e
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  tail -n 40 "$work/fuzz-$engine.txt"
  if [[ -n "${FLOWKEY_FUZZ_KEEP:-}" ]]; then cp "$work/fuzz-$engine.txt" "$FLOWKEY_FUZZ_KEEP-$engine.txt"; fi
  echo "== fuzz ($engine): exit $status in $(( $(date +%s) - started ))s"
  if [[ $status -ne 0 ]]; then
    failed=1
    echo "-- server log (last 30 lines)"
    tail -n 30 "$work/serve-$engine.log"
  fi
  if [[ -n "$pg_name" ]]; then
    psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $pg_name WITH (FORCE)" >/dev/null 2>&1 || true
    pg_name=""
  fi
done
exit $failed
