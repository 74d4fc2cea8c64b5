#!/usr/bin/env bash
# One worker of a study (Study II: docs/STUDY2_PLAN.md, Study III: docs/STUDY3_PLAN.md): runs from a git worktree of a fixed commit so changes to
# main cannot leak in; two of these share the units (each takes the next unit the other is not running).
# usage: scripts/study_worker.sh WORKTREE OUT LOG pcdarts-args...
set -euo pipefail
tree=$1 out=$2 log=$3
shift 3
py="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python"
cd /tmp
export OMP_NUM_THREADS=1 PYTHONPATH="$tree/src"
exec "$py" -m pcdarts "$@" --out "$out" --threads 1 --no-progress >>"$log" 2>&1
