#!/usr/bin/env bash
# The test command: install, lint, then the whole test suite (starts its own Redis when none answers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
