#!/usr/bin/env bash
# Fails if any tracked file names the directory beside the repository (the repository must
# stand alone on a fresh clone: fixtures live in Tests/Fixtures).
set -euo pipefail
cd "$(dirname "$0")/.."
pattern='\.\./'"shared"
if git grep -nI -e "$pattern" -- . ':!tools/check-standalone.sh'; then
  echo "error: the files above name a path outside the repository" >&2
  exit 1
fi
