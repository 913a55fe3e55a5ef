#!/usr/bin/env bash
# keymeter's benchmark, one command: builds in release mode, starts
# PostgreSQL (scripts/postgres.sh), makes a fresh database, and runs
# target/release/keymeter-bench against it, printing a table and JSON.
#
#   scripts/bench.sh                       # PostgreSQL, every scenario and ceiling
#   scripts/bench.sh --sqlite              # the same on an SQLite file
#   scripts/bench.sh --processes 2         # two server processes share the load
#   scripts/bench.sh --server-env KEYMETER_GROUP_COMMIT=false
#   scripts/bench.sh --event-scaling       # keysUsage at 10k, 100k and 1M events
#
# Other flags go to keymeter-bench (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
    echo "bench.sh: installing wrk" >&2
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; } >&2
fi
cargo build --release --workspace --quiet

sqlite=false
args=()
for arg in "$@"; do
    if [ "$arg" = "--sqlite" ]; then sqlite=true; else args+=("$arg"); fi
done

if [ "$sqlite" = true ]; then
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
    url="sqlite://$dir/bench.db?mode=rwc"
else
    admin=$(scripts/postgres.sh)
    name="keymeter_bench_$(date +%s)_$$"
    psql "$admin" -qXc "CREATE DATABASE $name"
    trap 'psql "$admin" -qXc "DROP DATABASE IF EXISTS $name WITH (FORCE)"' EXIT
    url="${admin%/*}/$name"
    export KEYMETER_BENCH_ADMIN_URL=$admin
fi

target/release/keymeter-bench --database-url "$url" ${args[@]+"${args[@]}"}
