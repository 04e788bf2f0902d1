#!/usr/bin/env bash
# Installs the Debian packages Tenki Host builds, tests and benchmarks with, if any is missing.
set -euo pipefail
packages=(liblua5.4-dev libpq-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev postgresql-15 wrk openssl python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
