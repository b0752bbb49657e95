#!/usr/bin/env bash
# Makes a PostgreSQL server available to the tests and prints the DS_TEST_POSTGRES URL.
# Order: $DS_TEST_POSTGRES if set; a server already answering on 127.0.0.1:5432 (starting
# the machine's own cluster if it is installed but stopped); otherwise PostgreSQL from the
# distribution's packages, as a private cluster under target/pg.
# Progress goes to stderr; the URL alone to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

answers() { (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -n "${DS_TEST_POSTGRES:-}" ]; then
  echo "using DS_TEST_POSTGRES" >&2
  echo "$DS_TEST_POSTGRES"
  exit 0
fi

if [ -z "${DS_CI_PRIVATE_PG:-}" ]; then
  if ! answers 5432 && [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null; then
    echo "starting the machine's PostgreSQL cluster" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >&2 || true
    for _ in $(seq 1 30); do answers 5432 && break; sleep 1; done
  fi
  if answers 5432 && psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
    echo "using the server on 127.0.0.1:5432" >&2
    echo "postgres://postgres@127.0.0.1:5432/test"
    exit 0
  fi
fi

port=55432
dir="$PWD/target/pg"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$bin" ]; then
  echo "installing PostgreSQL from the distribution's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
fi
run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if ! answers "$port"; then
  echo "starting a private cluster in $dir on port $port" >&2
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  [ -f "$dir/PG_VERSION" ] || run "$bin/initdb" -D "$dir" -U postgres --auth=trust >&2
  run "$bin/pg_ctl" -D "$dir" -l "$dir/log" -w -o "-p $port -k /tmp -c listen_addresses=127.0.0.1" start >&2
fi
run "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -Atc "select 1 from pg_database where datname = 'test'" | grep -q 1 \
  || run "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -c "create database test" >&2
echo "postgres://postgres@127.0.0.1:$port/test"
