#!/usr/bin/env bash
# The test command: install, lint, then the whole test suite (starts its own Redis when none answers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Headless Chromium for the web page test (tests/service): installed only as root on Debian/Ubuntu, only
# when missing; set BOOTPIG_SKIP_APT=1 to never touch system packages. Without it that one test is skipped.
if [ "${BOOTPIG_SKIP_APT:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
  && ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
  echo "setup: installing chromium and chromium-driver (for the web page test)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
    || echo "setup: warning: could not install chromium; the browser test will be skipped" >&2
fi
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
