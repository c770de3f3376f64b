#!/usr/bin/env bash
# The prepared GPU check (one short run on a lent CUDA machine), most important first; each part has its
# own time limit and a failing part does not stop the others:
#   1. whole 50-step loops at 512 px in bf16 (seconds per image and peak memory, k = 4 and 1: eager,
#      graphed, graphed with the stateless blocks compiled; goal: exact k = 4 <= 2 s on an H100), after
#      the per-step timings (exact, direct, fast mode vs vanilla SD);
#   2. the pipeline with CUDA graphs and compiled blocks gives the eager pipeline's images;
#   3. fp16/bf16 against fp32; 4. the training step at full SD 2.1-base size.
# Prints everything; with LOG_DIR set, also writes each part's log there.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
LOG_DIR=${LOG_DIR:-/tmp/gpu_check}
mkdir -p "$LOG_DIR"
export PYTHONPATH=${PYTHONPATH:-}:$(pwd) PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" -c "import torch, diffusers, transformers; print(torch.__version__, diffusers.__version__, transformers.__version__)"

part() {  # part NAME SECONDS COMMAND...: run with a time limit, log it, report its exit status
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit}s)"
  timeout "$limit" "$@" 2>&1 | tee "$LOG_DIR/$name.log"
  echo "=== $name: exit ${PIPESTATUS[0]}"
}

part loops "${LIMIT_LOOPS:-300}" "$PY" benchmarks/denoising_step.py --config sd21 --resolutions 512 \
  --device cuda --dtype bf16 --refs 4,1 --repeats 5 --job-steps 0 --loop-steps 50 --loop-repeats 2 --compile \
  --json "$LOG_DIR/loops.json"
part graphs "${LIMIT_GRAPHS:-120}" "$PY" benchmarks/cuda_graph_check.py --device cuda --dtype fp16 --compile
part precision "${LIMIT_PRECISION:-60}" "$PY" benchmarks/precision_check.py --config sd21 --resolution 512 \
  --device cuda
part train "${LIMIT_TRAIN:-60}" "$PY" benchmarks/train_step.py --case sd21 --device cuda --resolution 512 \
  --batch 8 --mixed-precision bf16 --gradient-checkpointing --optimizer all
