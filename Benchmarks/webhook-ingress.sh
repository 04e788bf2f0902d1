#!/usr/bin/env bash
# Benchmark: signed workflow_job deliveries accepted and durably stored per second over loopback
# HTTP, with 1 and 32 concurrent clients (wrk), on SQLite and PostgreSQL, dispatch running as in
# production. Prints one JSON document on stdout. Not a test.
#   Benchmarks/webhook-ingress.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
tools/install-deps.sh
swift build -c release --product tenki >&2
tenki=$PWD/.build/release/tenki
payload=$PWD/Tests/Fixtures/github/workflow_job.queued.payload.json
[ -f "$payload" ] || { echo "fixture missing: $payload" >&2; exit 1; }

if [ -z "${TENKI_TEST_POSTGRES_URL:-}" ]; then
  exec tools/with-postgres.sh "$0" "$@"
fi

secret=bench-secret
signature=$(TENKI_GITHUB_WEBHOOK_SECRET=$secret "$tenki" webhooks sign "$payload")
results=()
for driver in sqlite postgres; do
  work=$(mktemp -d /tmp/tenki-bench.XXXXXX)
  url_args=()
  if [ "$driver" = postgres ]; then
    db="bench_$(date +%s%N)"
    psql -q "$TENKI_TEST_POSTGRES_URL" -c "CREATE DATABASE $db" >/dev/null
    url_args=(--database-url "${TENKI_TEST_POSTGRES_URL%/*}/$db")
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  TENKI_GITHUB_WEBHOOK_SECRET=$secret TENKI_LOG_LEVEL=warning TENKI_DATABASE_POOL_SIZE=16 \
    "$tenki" serve --port "$port" --data-dir "$work" "${url_args[@]}" >"$work/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  for clients in 1 32; do
    threads=$(( clients < 2 ? 1 : 2 ))
    line=$(wrk -t"$threads" -c"$clients" -d"${seconds}s" --timeout 5s -s Benchmarks/wrk-webhooks.lua \
      "http://127.0.0.1:$port" -- "$payload" "$signature" "$driver-c$clients" | tail -n1)
    results+=("{\"driver\":\"$driver\",\"clients\":$clients,${line#\{}")
  done
  kill -TERM "$pid"; wait "$pid" || true
  stored=$(TENKI_GITHUB_WEBHOOK_SECRET=$secret "$tenki" webhooks stats --data-dir "$work" "${url_args[@]}" --json)
  results+=("{\"driver\":\"$driver\",\"stored\":$stored}")
  rm -rf "$work"
done
printf '{"benchmark":"webhook_ingress","seconds_per_run":%s,"payload_bytes":%s,"cores":%s,"results":[%s]}\n' \
  "$seconds" "$(stat -c %s "$payload")" "$(nproc)" "$(IFS=,; echo "${results[*]}")"
