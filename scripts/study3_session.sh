#!/usr/bin/env bash
# Start Study III's two one-thread workers (docs/STUDY3_PLAN.md); each resumes where the last session stopped.
# Both run `pcdarts study --preset fmnist-study3` from a git worktree of the study's fixed revision.
# usage: scripts/study3_session.sh [LOG_DIR]
# stop: kill -TERM the two workers' python processes (each finishes its step, writes its checkpoint and exits)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD out=$PWD/docs/study3/fmnist logs=${1:-/work/study3-logs}
rev=${STUDY3_REV:?set STUDY3_REV to the study revision named in docs/STUDY.md}
tree=/work/study3
mkdir -p "$logs" "$out"
git worktree prune
[ -d "$tree" ] || git worktree add --detach "$tree" "$rev"
[ "$(git -C "$tree" rev-parse --short=7 HEAD)" = "${rev:0:7}" ] || { echo "$tree is not at $rev"; exit 2; }
study=(study --preset fmnist-study3)
for w in 1 2; do
  nohup "$repo/scripts/study_worker.sh" "$tree" "$out" "$logs/study3-$w.log" "${study[@]}" >/dev/null 2>&1 &
  echo "worker $w: log $logs/study3-$w.log"
  sleep 8  # the two do not start their first unit at the same instant
done
