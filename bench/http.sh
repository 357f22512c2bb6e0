#!/usr/bin/env bash
# Compatibility overhead: the same request by legacy session id (v1) and by flow id (v3)
# against one running `flowkey serve`, under concurrent load (wrk), on one engine.
#   bash bench/http.sh ENGINE OUTDIR SECONDS CONNECTIONS   (called by bench/run.sh)
# Prints one JSON line per figure (size 0) for results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ENGINE=$1 OUT=$2 SECS=$3 CONNECTIONS=$4
FLOWKEY=${FLOWKEY:-$ROOT/target/release/flowkey}
PG_HOST=${PG_HOST:-127.0.0.1} PG_PORT=${PG_PORT:-5432} PG_USER=${PG_USER:-postgres}
PORT=${HTTP_PORT:-18931}
NAME=fkb_http_$ENGINE
DIR=$OUT/http.$ENGINE
mkdir -p "$DIR"

case "$ENGINE" in
    postgres)
        psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres \
            -c "DROP DATABASE IF EXISTS $NAME WITH (FORCE)" -c "CREATE DATABASE $NAME"
        URL=postgres://$PG_USER@$PG_HOST:$PG_PORT/$NAME
        query() { psql -X -At -F ' ' -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$NAME" -c "$1"; } ;;
    sqlite)
        rm -f "$DIR/$NAME.db"*
        URL=sqlite://$DIR/$NAME.db
        query() { sqlite3 -separator ' ' "$DIR/$NAME.db" "$1"; } ;;
    *) echo "unknown engine $ENGINE" >&2; exit 2 ;;
esac

"$FLOWKEY" --database-url "$URL" seed --seed 7 --tenants 4 --imports 25 --rows-per-import 20 --no-progress > "$DIR/seed.out" 2>&1
"$FLOWKEY" --database-url "$URL" upgrade head --no-progress > "$DIR/upgrade.out" 2>&1

# One request pair per mapped session whose flow is in the session's tenant.
query "SELECT '/api/v1/unified-discovery/flow/status/' || m.session_id, m.client_account_id, m.engagement_id
       FROM session_flow_mapping AS m JOIN discovery_flows AS f ON f.flow_id = m.flow_id
       WHERE f.client_account_id = m.client_account_id AND f.engagement_id = m.engagement_id
       ORDER BY m.session_id" > "$DIR/legacy.paths"
query "SELECT '/api/v3/discovery-flow/flows/' || m.flow_id, m.client_account_id, m.engagement_id
       FROM session_flow_mapping AS m JOIN discovery_flows AS f ON f.flow_id = m.flow_id
       WHERE f.client_account_id = m.client_account_id AND f.engagement_id = m.engagement_id
       ORDER BY m.session_id" > "$DIR/flow.paths"

"$FLOWKEY" --database-url "$URL" serve --bind "127.0.0.1:$PORT" > "$DIR/serve.out" 2> "$DIR/serve.err" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$PORT/ready" > /dev/null 2>&1; then break; fi
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/ready" > /dev/null

# Keep only the pairs whose legacy request answers 200 (with the default flag, sessions mapped
# by the `data_import` rule answer 404 on this route: counted and reported, not loaded).
paste -d '\n' "$DIR/legacy.paths" "$DIR/flow.paths" > "$DIR/pairs.all"
: > "$DIR/legacy.ok"; : > "$DIR/flow.ok"; not_ok=0
while read -r legacy_line && read -r flow_line; do
    read -r path client engagement <<< "$legacy_line"
    code=$(curl -s -o /dev/null -w "%{http_code}" -H "X-Client-Account-Id: $client" \
        -H "X-Engagement-Id: $engagement" "http://127.0.0.1:$PORT$path")
    if [ "$code" = 200 ]; then
        echo "$legacy_line" >> "$DIR/legacy.ok"; echo "$flow_line" >> "$DIR/flow.ok"
    else
        not_ok=$((not_ok + 1)); echo "$code $legacy_line" >> "$DIR/legacy.not_ok"
    fi
done < "$DIR/pairs.all"
mv "$DIR/legacy.ok" "$DIR/legacy.paths"; mv "$DIR/flow.ok" "$DIR/flow.paths"
printf '{"engine":"%s","size":0,"metric":"http_legacy_sessions_not_200","value":%s}\n' "$ENGINE" "$not_ok"
printf '{"engine":"%s","size":0,"metric":"http_sessions_loaded","value":%s}\n' "$ENGINE" "$(wc -l < "$DIR/legacy.paths")"

# Check both routes answer 200 for the first pair before loading them.
first_legacy=$(head -1 "$DIR/legacy.paths")
first_flow=$(head -1 "$DIR/flow.paths")
for line in "$first_legacy" "$first_flow"; do
    read -r path client engagement <<< "$line"
    curl -sS -o "$DIR/sample$(echo "$path" | tr '/' '_').json" -w "%{http_code} $path\n" \
        -H "X-Client-Account-Id: $client" -H "X-Engagement-Id: $engagement" \
        "http://127.0.0.1:$PORT$path" >> "$DIR/samples.txt"
done

emit() { printf '{"engine":"%s","size":0,"metric":"%s","value":%s}\n' "$ENGINE" "$1" "$2"; }
# Warm up both (cache, connections), then measure flow, legacy, flow, legacy; report the
# better-of-two per route so a noisy neighbour on the shared machine hurts neither side alone.
for route in flow legacy; do
    PATHS=$DIR/$route.paths wrk -t 2 -c "$CONNECTIONS" -d 2s -s "$ROOT/bench/paths.lua" \
        "http://127.0.0.1:$PORT" > "$DIR/warmup.$route.txt" 2>&1
done
for round in 1 2; do
    for route in flow legacy; do
        PATHS=$DIR/$route.paths wrk -t 2 -c "$CONNECTIONS" -d "${SECS}s" --latency -s "$ROOT/bench/paths.lua" \
            "http://127.0.0.1:$PORT" > "$DIR/wrk.$route.$round.txt" 2>&1
    done
done
python3 - "$DIR" "$ENGINE" <<'PY'
import json, re, sys
directory, engine = sys.argv[1], sys.argv[2]
for route in ("flow", "legacy"):
    rounds = []
    for round_ in (1, 2):
        text = open(f"{directory}/wrk.{route}.{round_}.txt").read()
        m = re.search(r"FIGURES requests=(\d+) errors=(\d+) non2xx=(\d+) p50_us=(\d+) p99_us=(\d+) max_us=(\d+) duration_us=(\d+)", text)
        if not m:
            continue
        req, err, non2xx, p50, p99, mx, dur = map(int, m.groups())
        rounds.append({"count": req, "errors": err + non2xx, "rps": req / (dur / 1e6),
                       "p50_ms": p50 / 1000, "p99_ms": p99 / 1000, "max_ms": mx / 1000})
    if not rounds:
        continue
    best = min(rounds, key=lambda r: r["p99_ms"])
    best["errors"] = sum(r["errors"] for r in rounds)
    for key, value in best.items():
        print(json.dumps({"engine": engine, "size": 0, "metric": f"http_{route}_{key}", "value": round(value, 3)}))
PY
