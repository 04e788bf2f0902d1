#!/usr/bin/env bash
# Runs every test against SQLite and PostgreSQL. Uses TENKI_TEST_POSTGRES_URL if set,
# otherwise starts a throwaway PostgreSQL cluster for the run.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build --build-tests
if [ -n "${TENKI_TEST_POSTGRES_URL:-}" ]; then
  swift test --skip-build "$@"
else
  tools/with-postgres.sh swift test --skip-build "$@"
fi
