#!/usr/bin/env bash
# Make a headless Chromium available for the HTML report tests
# (tests/test_report_html.py renders reports and loads them in a real browser).
# Idempotent: does nothing when chromium is already on PATH.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "chromium not found: installing it with apt-get" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || {
  echo "chromium still missing after install" >&2
  exit 1
}
