#!/usr/bin/env bash
# Start Study II's two one-thread workers for a session (docs/STUDY.md, "Where it stands"); each resumes
# where the last session stopped. While the calibration is unfinished, worker 1 finishes it (from its own
# revision) and then joins the study; worker 2 runs the study from step 2's revision from the start: its
# searches and selections do not need the training budget, and its trainings wait until the budget is chosen.
# usage: scripts/study2_session.sh [LOG_DIR]      (stop: pkill -TERM -f "python -m pcdarts (fidelity|study)";
# a calibration stopped so exits 130, and worker 1 then does not go on to the study)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD out=$PWD/docs/study2/fmnist logs=${1:-/work/study2-logs}
calib_rev=2b2175b step2_rev=051a6d4
calib_tree=/work/study2 step2_tree=/work/study2b
mkdir -p "$logs"
git worktree prune
[ -d "$calib_tree" ] || git worktree add "$calib_tree" "$calib_rev"
[ -d "$step2_tree" ] || git worktree add "$step2_tree" "$step2_rev"
[ "$(git -C "$calib_tree" rev-parse --short=7 HEAD)" = "$calib_rev" ] || { echo "$calib_tree is not at $calib_rev"; exit 2; }
[ "$(git -C "$step2_tree" rev-parse --short=7 HEAD)" = "$step2_rev" ] || { echo "$step2_tree is not at $step2_rev"; exit 2; }
worker="$repo/scripts/study_worker.sh"
study=(study --preset fmnist-study2 --budget-from "$out")
chosen=$("$repo/.venv/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1])).get('chosen_budget'))" \
  "$out/fidelity.json")
if [ "$chosen" = "None" ]; then
  nohup bash -c "'$worker' '$calib_tree' '$out' '$logs/fidelity.log' fidelity --preset fmnist-study2 && \
    exec '$worker' '$step2_tree' '$out' '$logs/study2.log' ${study[*]}" >/dev/null 2>&1 &
  echo "worker 1: the calibration, then the study (logs $logs/fidelity.log, $logs/study2.log)"
else
  nohup "$worker" "$step2_tree" "$out" "$logs/study2.log" "${study[@]}" >/dev/null 2>&1 &
  echo "worker 1: the study (budget $chosen epochs; log $logs/study2.log)"
fi
sleep 8  # the two do not start their first unit at the same instant
nohup "$worker" "$step2_tree" "$out" "$logs/study1.log" "${study[@]}" >/dev/null 2>&1 &
echo "worker 2: the study (log $logs/study1.log)"
