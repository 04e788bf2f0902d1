#!/usr/bin/env bash
# Style checks CI runs before the tests (the tidy rules a formatter cannot see are a test
# target, Tests/TidyTests):
#   - every Swift file is formatted as `swift format` formats it with .swift-format;
#   - commit subjects are at most 72 characters, from the commit that set the rule on.
# To fix formatting: swift format format --in-place --recursive --parallel Sources Tests Package.swift
set -euo pipefail
cd "$(dirname "$0")/.."
swift format lint --strict --recursive --parallel Sources Tests Package.swift

rule_start=7cf89c9   # commits after this one follow the 72-character rule
max_subject=72
if ! git cat-file -e "$rule_start^{commit}" 2>/dev/null; then
  # A shallow clone has no history to check; say so loudly rather than pass in silence.
  echo "warning: commit $rule_start is not in this clone's history (a shallow clone?): commit subjects NOT checked" >&2
  exit 0
fi
long=$(git log --no-merges --format='%h %s' "$rule_start..HEAD" | awk -v max="$max_subject" 'length($0) - index($0, " ") > max')
if [ -n "$long" ]; then
  echo "error: commit subjects longer than $max_subject characters:" >&2
  echo "$long" >&2
  exit 1
fi
