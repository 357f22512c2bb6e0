# What the per-issue bench scripts share (sourced by bench/contract.sh, bench/readiness.sh and
# bench/write-ledger.sh): their options, a log line, a timed flowkey command, and the
# databases they seed (fresh_database, drop_database).
#
# The sourcing script sets ROOT and the default OUT directory's prefix before calling
# `bench_options "$@"`; it gets SIZES, ENGINES, OUT, PG and FLOWKEY.

bench_options() { # ARGS...: --sizes, --engines, --out; anything else prints the usage
    SIZES=1000000
    ENGINES=postgres,sqlite
    OUT=""
    PG=${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}
    FLOWKEY=${FLOWKEY:-$ROOT/target/release/flowkey}
    while [ $# -gt 0 ]; do
        case "$1" in
            --sizes) SIZES=$2; shift 2 ;;
            --engines) ENGINES=$2; shift 2 ;;
            --out) OUT=$2; shift 2 ;;
            *) sed -n 2,10p "$0"; exit 2 ;;
        esac
    done
    OUT=${OUT:-$(mktemp -d "/tmp/$OUT_PREFIX.XXXX")}
    mkdir -p "$OUT"
}

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# NAME URL ARGS...: runs flowkey, prints wall seconds and peak RSS MiB. A failing command is
# timed too (some are expected to fail); its last lines go to stderr and its status is kept.
timed() {
    local name=$1 url=$2; shift 2
    local start end status=0
    start=$(date +%s.%N)
    /usr/bin/time -v -o "$OUT/$name.time" "$FLOWKEY" --database-url "$url" "$@" \
        > "$OUT/$name.out" 2> "$OUT/$name.err" || status=$?
    end=$(date +%s.%N)
    [ "$status" -eq 0 ] || tail -5 "$OUT/$name.err" >&2
    local rss
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/$name.time")
    python3 -c "print(f'{$end - $start:.2f} {$rss / 1024:.1f}')"
    return "$status"
}

# ENGINE NAME: an empty database of that name (dropped first if it exists); prints its URL.
fresh_database() {
    local engine=$1 name=$2
    case "$engine" in
        postgres)
            psql -X -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name" 2>/dev/null
            echo "$PG/$name" ;;
        sqlite)
            rm -f "$OUT/$name.db"*
            echo "sqlite://$OUT/$name.db" ;;
    esac
}

# ENGINE NAME: drops the database fresh_database made.
drop_database() {
    case "$1" in
        postgres) psql -X -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)" 2>/dev/null ;;
        sqlite) rm -f "$OUT/$2.db"* ;;
    esac
}
