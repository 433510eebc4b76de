#!/usr/bin/env bash
# The PostgreSQL yardstick of issue 12: runs pgbaseline with the arguments
# given on a throw-away PostgreSQL server of its own (--throwaway: data in a
# temporary directory, 127.0.0.1 at a random port, synchronous_commit=off),
# removed after the run. Needs PostgreSQL's initdb and postgres (Debian:
# apt-get install postgresql); run as root, the server runs as postgres.
#
#   examples/pgbaseline/run.sh --orders 20000 --skus 1000 --json
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(mktemp -d)/pgbaseline
trap 'rm -rf "$(dirname "$bin")"' EXIT
# Built first, so that the run's CPU is the program's, not the compiler's.
(cd "$here" && go build -o "$bin" .)
"$bin" --throwaway "$@"
