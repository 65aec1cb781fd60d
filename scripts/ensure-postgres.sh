#!/usr/bin/env bash
# Make PostgreSQL's server binaries (initdb, pg_ctl) available for the tests.
# The tests start their own throwaway cluster; nothing is started here.
set -euo pipefail

if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
echo "PostgreSQL server binaries not found: installing them with apt-get" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq postgresql >/dev/null
# Debian's package starts a default cluster; the tests do not need it
$SUDO service postgresql stop >/dev/null 2>&1 || true
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "initdb still missing" >&2; exit 1; }
