#!/usr/bin/env bash
# The service on this machine: install (idempotent), then Redis (embedded if none answers), API and a worker.
# Without BOOTPIG_MODEL a random-weight demo model is served (see README). Extra args go to `bootpig up`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/bootpig up "$@"
