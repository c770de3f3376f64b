#!/usr/bin/env bash
# The prepared GPU check (one short run on a lent CUDA machine): precision against fp32, then timings of
# the denoising step and the training step at full SD 2.1-base size. Prints everything; writes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
export PYTHONPATH=${PYTHONPATH:-}:$(pwd) PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" benchmarks/precision_check.py --config sd21 --resolution 512 --device cuda
for dtype in fp16 bf16; do
  "$PY" benchmarks/denoising_step.py --config sd21 --resolution 512 --device cuda --dtype "$dtype" --repeats 10
done
"$PY" benchmarks/train_step.py --case sd21 --device cuda --resolution 512 --batch 8 \
  --mixed-precision bf16 --gradient-checkpointing --optimizer all
