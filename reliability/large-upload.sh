#!/usr/bin/env bash
# Large CSV uploads through the real server, long version: `flowkey serve` (release build) on
# a SQLite file and on PostgreSQL, a generated CMDB file of ROWS rows (13 columns, one quoted
# field with a comma per row) uploaded with curl to POST /api/v3/data-import/imports/upload,
# the server's resident memory read from /proc/PID/status before and after (VmHWM = peak,
# VmRSS = now). Prints one line per engine and size:
#
#   RELIABILITY large-upload engine=sqlite rows=1000000 bytes=... status=201 seconds=...
#     rows_per_s=... rss_before_kb=... rss_after_kb=... peak_kb=...
#
# Every size runs on a fresh server, so VmHWM is the peak of that upload alone. Memory is
# bounded when the peak at the largest size stays close to the peak at the smallest. Exits
# non-zero when an upload is not a 201, stores a different row count, or the peak at the
# largest size exceeds twice the peak at the smallest.
#
#   bash reliability/large-upload.sh [ROWS ...]          (default: 100000 1000000)
#   FLOWKEY_BINARY=target/release/flowkey, FLOWKEY_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test
set -uo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(100000 1000000)
flowkey="${FLOWKEY_BINARY:-target/release/flowkey}"
[ -x "$flowkey" ] || cargo build --release --quiet || exit 1
admin="${FLOWKEY_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
work=$(mktemp -d /tmp/flowkey-large-upload.XXXXXX)
pg_name="flowkey_upload_$$"
port=$(( 20000 + $$ % 20000 ))
base="http://127.0.0.1:$port"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $pg_name WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# The file: header + ROWS rows, about 150 bytes a row.
generate() {
  python3 -c '
import sys
rows = int(sys.argv[1])
out = sys.stdout
out.write("Asset Name,Asset Type,Environment,Owner,Criticality,OS,CPU Cores,Memory GB,Storage GB,Location,Dependencies,Hostname,IP Address\n")
envs = ("prod", "test", "dev")
for n in range(1, rows + 1):
    env = envs[n % 3]
    out.write(f"asset-{n},server,{env},team-{n % 17},high,linux,{n % 64 + 1},{n % 512 + 1},{n % 4096},\"dc-{n % 9}, rack {n % 40}\",app-{n % 100},host-{n}.example.internal,10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}\n")
' "$1" >"$2"
}

rss() { grep -E "^$1:" "/proc/$2/status" | awk '{print $2}'; }

status=0
declare -A peaks
for engine in sqlite postgres; do
  for rows in "${sizes[@]}"; do
    file="$work/upload-$rows.csv"
    [ -f "$file" ] || generate "$rows" "$file"
    bytes=$(stat -c %s "$file")
    if [ "$engine" = sqlite ]; then
      url="sqlite://$work/flowkey-$rows.db"
      rm -f "$work/flowkey-$rows.db"*
    else
      psql -q "$admin" -c "DROP DATABASE IF EXISTS $pg_name WITH (FORCE)" >/dev/null 2>&1
      psql -q "$admin" -c "CREATE DATABASE $pg_name" >/dev/null || exit 1
      url="${admin%/*}/$pg_name"
    fi
    "$flowkey" --database-url "$url" seed --tenants 1 --imports 1 --rows-per-import 1 \
      --no-oddities --no-progress >/dev/null || exit 1
    "$flowkey" --database-url "$url" upgrade head --no-progress >/dev/null 2>&1 || exit 1
    if [ "$engine" = sqlite ]; then
      read -r client engagement < <(python3 -c '
import sqlite3, sys
row = sqlite3.connect(sys.argv[1]).execute("SELECT client_account_id, id FROM engagements LIMIT 1").fetchone()
print(row[0], row[1])' "$work/flowkey-$rows.db")
    else
      read -r client engagement < <(psql -qtA -F ' ' "$url" -c \
        "SELECT client_account_id, id FROM engagements LIMIT 1")
    fi
    FLOWKEY_MAX_UPLOAD_BYTES=$(( bytes * 2 )) RUST_LOG=warn \
      "$flowkey" --database-url "$url" serve --bind "127.0.0.1:$port" \
      2>"$work/serve-$engine-$rows.log" &
    server=$!
    for _ in $(seq 1 200); do curl -fs "$base/health" >/dev/null && break; sleep 0.05; done
    before=$(rss VmRSS "$server")
    started=$(date +%s.%N)
    code=$(curl -s -o "$work/answer.json" -w "%{http_code}" \
      -H "X-Client-Account-Id: $client" -H "X-Engagement-Id: $engagement" \
      -F "import_type=cmdb" -F "file=@$file;type=text/csv" \
      "$base/api/v3/data-import/imports/upload")
    ended=$(date +%s.%N)
    after=$(rss VmRSS "$server")
    peak=$(rss VmHWM "$server")
    kill "$server"; wait "$server" 2>/dev/null; server=""
    stored=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"]["record_count"])' \
      "$work/answer.json" 2>/dev/null || echo "?")
    seconds=$(python3 -c "print(f'{$ended - $started:.2f}')")
    rate=$(python3 -c "print(int($rows / ($ended - $started)))")
    echo "RELIABILITY large-upload engine=$engine rows=$rows bytes=$bytes status=$code stored=$stored seconds=$seconds rows_per_s=$rate rss_before_kb=$before rss_after_kb=$after peak_kb=$peak"
    if [ "$code" != 201 ] || [ "$stored" != "$rows" ]; then
      echo "  upload failed: $(head -c 400 "$work/answer.json")"
      status=1
    fi
    peaks["$engine-$rows"]=$peak
  done
  first=${peaks["$engine-${sizes[0]}"]}
  last=${peaks["$engine-${sizes[-1]}"]}
  if [ "$last" -gt $(( first * 2 )) ]; then
    echo "  $engine: peak RSS grows with the file (${first} kB -> ${last} kB)"
    status=1
  fi
done
exit "$status"
