#!/usr/bin/env bash
# The GPU measurements issues 6 and 17 ask for, as one short script for a session that is lent a GPU.
# Writes JSON and text under ${OUT:-bench_gpu}; needs the project installed (make test sets up .venv).
# Expected to take a few minutes on one H200; each command has its own timeout so one hang cannot eat the rest.
set -u
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench_gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
run() {  # name, timeout seconds, bench arguments...
  local name=$1 limit=$2
  shift 2
  timeout "$limit" "$PY" -m pcdarts.bench "$@" --json > "$OUT/$name.json" 2> "$OUT/$name.err"
  echo "$name: rc=$?"
}
# CIFAR-10-shaped search step at the paper's batch 256; the projection line is the 50-epoch search.
run step_b256_bf16 180 step --baseline --device cuda --batch 256 --precision bf16 --repeats 10
run step_b256_fp32 180 step --baseline --device cuda --batch 256 --precision fp32 --repeats 10
run fanout_b256 120 fanout --device cuda --batch 256 --repeats 10  # fp32: autocast runs edge by edge
run memory_b256 120 memory --device cuda --batch 256 --ks 1 2 4 8
run recompute_b256 240 recompute --device cuda --batch 256 --repeats 5
run regional_b256 240 compile --regional --device cuda --batch 256 --repeats 10
run compile_b256 240 compile --device cuda --batch 256 --repeats 10
