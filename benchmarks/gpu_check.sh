#!/usr/bin/env bash
# The prepared GPU check (one short run on a lent CUDA machine): precision against fp32, then timings of
# the denoising step (exact, direct, fast mode vs vanilla SD), whole 50-step loops at 512 px in bf16
# (seconds per image and peak memory, k = 1 and 4, eager, graphed, and graphed with the stateless blocks
# compiled; goal: exact k = 4 <= 2 s on an H100), and the
# training step at full SD 2.1-base size. Prints everything; writes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
export PYTHONPATH=${PYTHONPATH:-}:$(pwd) PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" benchmarks/cuda_graph_check.py --device cuda --dtype fp16 --compile
"$PY" benchmarks/precision_check.py --config sd21 --resolution 512 --device cuda
"$PY" benchmarks/denoising_step.py --config sd21 --resolutions 512 --device cuda --dtype bf16 \
  --refs 4,1 --repeats 10 --job-steps 0 --loop-steps 50 --compile
"$PY" benchmarks/denoising_step.py --config sd21 --resolutions 512 --device cuda --dtype fp16 \
  --refs 1,4 --repeats 5 --job-steps 0
"$PY" benchmarks/train_step.py --case sd21 --device cuda --resolution 512 --batch 8 \
  --mixed-precision bf16 --gradient-checkpointing --optimizer all
