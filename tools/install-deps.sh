#!/usr/bin/env bash
# Installs the Debian packages Tenki Host builds, tests and benchmarks with, if any is missing,
# and the test peers from PyPI (localstripe) into the repository's .build-venv.
set -euo pipefail
packages=(liblua5.4-dev libpq-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev postgresql-15 wrk openssl python3 python3-venv)
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

# localstripe, the Stripe test peer (GPL: run as a separate process by the tests, never vendored).
localstripe_version=1.15.10
venv="$(cd "$(dirname "$0")/.." && pwd)/.build-venv"
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('localstripe') != '$localstripe_version')" 2>/dev/null; then
  echo "installing localstripe $localstripe_version into $venv" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "localstripe==$localstripe_version"
fi
