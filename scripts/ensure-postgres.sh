#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers for the test suite, and prints the admin URL the
# tests should use (FLOWKEY_TEST_PG_URL). Order of preference:
#   1. FLOWKEY_TEST_PG_URL already set and answering;
#   2. a server on 127.0.0.1:5432 (trust auth, database `test`), as on these machines;
#   3. the distribution's cluster, started with pg_ctlcluster;
#   4. a throwaway cluster made with initdb under a temp directory (installing the
#      distribution's postgresql package first if it is missing).
set -euo pipefail

log() { echo "ensure-postgres: $*" >&2; }

answers() { # url
  psql "$1" -Atqc 'select 1' >/dev/null 2>&1
}

if [[ -n "${FLOWKEY_TEST_PG_URL:-}" ]]; then
  if answers "$FLOWKEY_TEST_PG_URL"; then echo "$FLOWKEY_TEST_PG_URL"; exit 0; fi
  log "FLOWKEY_TEST_PG_URL is set but does not answer: $FLOWKEY_TEST_PG_URL"
  exit 1
fi

if ! command -v psql >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  log "installing postgresql from the distribution's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql postgresql-client >&2
fi

default_url="postgres://postgres@127.0.0.1:5432/test"
for url in "$default_url" "postgres://postgres@127.0.0.1:5432/postgres"; do
  if answers "$url"; then
    if [[ "$url" != "$default_url" ]]; then
      psql "$url" -qc 'CREATE DATABASE test' >&2 || true
    fi
    echo "$default_url"; exit 0
  fi
done

if command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql/*/main >/dev/null 2>&1; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting the distribution's cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  for _ in $(seq 1 30); do
    if answers "postgres://postgres@127.0.0.1:5432/postgres"; then
      psql "postgres://postgres@127.0.0.1:5432/postgres" -qc 'CREATE DATABASE test' >/dev/null 2>&1 || true
      if answers "$default_url"; then echo "$default_url"; exit 0; fi
    fi
    sleep 1
  done
  log "the distribution's cluster did not answer with trust auth; making a throwaway one"
fi

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
dir=$(mktemp -d /tmp/flowkey-pg.XXXXXX)
chown postgres:postgres "$dir" 2>/dev/null || true
port=55432
run_as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
log "initdb a throwaway cluster in $dir on port $port"
run_as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
run_as_pg "$bin/pg_ctl" -D "$dir/data" -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" -l "$dir/log" -w start >&2
url="postgres://postgres@127.0.0.1:$port/test"
psql "postgres://postgres@127.0.0.1:$port/postgres" -qc 'CREATE DATABASE test' >&2
answers "$url" || { log "throwaway cluster does not answer"; cat "$dir/log" >&2; exit 1; }
echo "$url"
