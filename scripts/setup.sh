#!/usr/bin/env bash
# Create .venv and install bootpig with its test tools. Safe to rerun: an up-to-date install is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.bootpig-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip setuptools wheel
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi
# Headless Chromium for the web page test (tests/service): installed only as root on Debian/Ubuntu, only
# when missing; set BOOTPIG_SKIP_APT=1 to never touch system packages. Without it that one test is skipped.
if [ "${BOOTPIG_SKIP_APT:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
  && ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
  echo "setup: installing chromium and chromium-driver (for the web page test)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
    || echo "setup: warning: could not install chromium; the browser test will be skipped" >&2
fi
