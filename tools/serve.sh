#!/usr/bin/env bash
# Installs what is missing, builds, and runs `tenki serve` on the embedded default (SQLite
# under ./data, http://127.0.0.1:8080). Extra arguments go to `tenki serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product tenki
exec .build/release/tenki serve "$@"
