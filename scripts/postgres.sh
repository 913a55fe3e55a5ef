#!/usr/bin/env bash
# Makes a PostgreSQL server reachable for keymeter's tests and benchmarks and
# prints its admin URL on stdout (everything else goes to stderr).
#
#   KEYMETER_TEST_DATABASE_URL=$(scripts/postgres.sh)
#
# On a fresh machine PostgreSQL 15 is installed but stopped, and TCP logins
# use scram-sha-256 while the `postgres` role has no password, so no TCP login
# can succeed until the role gets one. As root, this script starts the
# cluster (`pg_ctlcluster 15 main start`) and sets the role's password through
# the local socket, where peer authentication needs none. Both steps are
# idempotent. Not as root, it only checks that the server answers.
set -euo pipefail

host=${KEYMETER_PG_HOST:-127.0.0.1}
port=${KEYMETER_PG_PORT:-5432}
password=${KEYMETER_PG_PASSWORD:-keymeter}
url="postgres://postgres:${password}@${host}:${port}/postgres"

log() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" -eq 0 ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    version=$(pg_lsclusters --no-header 2>/dev/null | awk 'NR==1 {print $1}')
    cluster=$(pg_lsclusters --no-header 2>/dev/null | awk 'NR==1 {print $2}')
    version=${version:-15}
    cluster=${cluster:-main}
    if ! pg_isready -q -h "$host" -p "$port"; then
        log "starting cluster $version/$cluster"
        pg_ctlcluster "$version" "$cluster" start >&2 || true
        for _ in $(seq 1 30); do
            pg_isready -q -h "$host" -p "$port" && break
            sleep 0.5
        done
    fi
    runuser -u postgres -- psql -qX -p "$port" -c "ALTER ROLE postgres PASSWORD '${password}'" >&2
fi

if ! pg_isready -q -h "$host" -p "$port"; then
    log "no PostgreSQL answers on $host:$port"
    exit 1
fi
if ! PGPASSWORD=$password psql -qX -h "$host" -p "$port" -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
    log "PostgreSQL answers on $host:$port but refuses postgres/\$KEYMETER_PG_PASSWORD"
    exit 1
fi
echo "$url"
