#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster: initdb in a temp dir, a free loopback
# port, TENKI_TEST_POSTGRES_URL exported, and the cluster stopped and removed on exit.
# Usage: tools/with-postgres.sh COMMAND [ARGS...]
set -euo pipefail
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL server binaries not found (install postgresql-15)" >&2; exit 1; }
dir=$(mktemp -d /tmp/tenki-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
run_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$dir"
cleanup() {
  run_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM
run_pg "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
run_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=300 -c shared_buffers=256MB" start >/dev/null
export TENKI_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
echo "throwaway PostgreSQL at $TENKI_TEST_POSTGRES_URL" >&2
"$@"
