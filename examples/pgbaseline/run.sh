#!/usr/bin/env bash
# The PostgreSQL yardstick of issue 12: starts a throw-away PostgreSQL server
# (data in a temporary directory, listening on 127.0.0.1 at a random port,
# synchronous_commit=off: a commit is acknowledged before its WAL is flushed,
# the durability class of JetStream's default, which flushes in the
# background), runs pgbaseline against it with the arguments given, and
# removes it. Needs PostgreSQL's initdb, postgres and pg_isready (Debian:
# apt-get install postgresql).
#
#   examples/pgbaseline/run.sh --orders 20000 --skus 1000 --json
set -euo pipefail
# Debian's postgresql package keeps the server programs off PATH.
for d in /usr/lib/postgresql/*/bin; do
  if [ -x "$d/initdb" ]; then PATH="$PATH:$d"; fi
done
here=$(cd "$(dirname "$0")" && pwd)
bin=$(mktemp -d)/pgbaseline
(cd "$here" && go build -o "$bin" .)
dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
# PostgreSQL refuses to run as root: then it runs as the postgres user.
as=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$dir"
  as=(runuser -u postgres --)
fi
cleanup() {
  if [ -n "${pid:-}" ]; then
    "${as[@]}" pg_ctl -D "$dir/data" stop -m fast >/dev/null 2>&1 || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir" "$(dirname "$bin")"
}
trap cleanup EXIT
"${as[@]}" initdb --auth=trust --username=postgres -D "$dir/data" >/dev/null
"${as[@]}" postgres -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
  -c synchronous_commit=off -c max_connections=300 -c shared_buffers=256MB >"$dir/postgres.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.1
done
pg_isready -q -h 127.0.0.1 -p "$port" || { cat "$dir/postgres.log"; exit 1; }
"$bin" --dsn "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable" "$@"
