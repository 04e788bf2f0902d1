#!/usr/bin/env bash
# Runs every test against SQLite and PostgreSQL. Uses TENKI_TEST_POSTGRES_URL if set,
# otherwise starts a throwaway PostgreSQL cluster for the run.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build --build-tests
# The tests' databases, data dirs and peers' files go to one folder per run, removed at the end.
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/tenki-tests.XXXXXX")
trap 'rm -rf "$run_tmp"' EXIT
if [ -n "${TENKI_TEST_POSTGRES_URL:-}" ]; then
  env TMPDIR="$run_tmp/" swift test --skip-build "$@"
else
  tools/with-postgres.sh env TMPDIR="$run_tmp/" swift test --skip-build "$@"
fi
