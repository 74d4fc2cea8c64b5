#!/usr/bin/env bash
# One prepared check for a machine with a GPU: about 8 minutes, each part under its own timeout.
# Needs only torch and this repository on that machine: no install, no downloads, synthetic data.
# Writes every result as JSON into ${OUT:-gpu_check} (set OUT to choose the folder); commit them under
# docs/bench/gpu/. The per-part timeouts add up to 480 s (8 minutes), so one hang cannot eat the rest.
#   run it:  bash scripts/gpu_check.sh            (from the repository root)
set -u
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia-smi.txt" 2>&1
part() {  # name, timeout seconds, command...
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: rc=$rc in $((SECONDS - t0)) s (limit $limit s); $(tail -n 1 "$OUT/$name.log" | cut -c1-300)"
}
check() { part "$1" "$2" "$PY" scripts/gpu_check.py "$1" --out "$OUT" --device cuda "${@:3}"; }
bench() { part "$1" "$2" "$PY" -m pcdarts.bench "${@:3}" --device cuda --json; cp "$OUT/$1.log" "$OUT/$1.json"; }

check env 20                                                   # versions, which optional modules import
check numerics 40                                              # float64: fan-out vs edge by edge, lean vs reference; bf16 errors
check syncs 40                                                 # host-device syncs per search step
check run 90                                                   # 2-epoch search + 1-epoch training, batch 256; auto batch
bench step_fp32 80 step --batch 256 --precision fp32 --repeats 5   # TF32 matmuls/convs; projects the 50-epoch search
bench step_bf16 60 step --batch 256 --precision bf16 --repeats 3   # autocast (the fan-out runs): bf16 against fp32 + TF32
bench fanout_fp32 60 fanout --batch 256 --repeats 5             # the fan-out on and off, fp32
bench fanout_bf16 40 fanout --batch 256 --precision bf16 --repeats 3   # the fan-out on and off under bf16 autocast
bench memory 50 memory --batch 256 --ks 1 4                     # saved activations and peak per K
bench limit 40 limit --batch 64 --repeats 5 --device cuda        # peak GFLOP/s and each step's share of it
echo "results in $OUT/"
