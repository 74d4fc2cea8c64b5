#!/usr/bin/env bash
# Commit Study II's progress (docs/study2/fmnist) as it stands, so a later session resumes from it.
# Trainings: an unfinished one keeps its checkpoint.pt in git (it resumes from it); a finished one drops it
# (result.json, best.pt and the logs are its record). Searches keep checkpoint.pt: an unfinished search resumes
# from it and perturbation-based selection starts from a finished one's.
# usage: scripts/study2_commit.sh "commit message"
set -euo pipefail
cd "$(dirname "$0")/.."
root=docs/study2/fmnist
shopt -s nullglob
for d in "$root"/train/*/; do
  if [ -f "$d/result.json" ]; then
    if git ls-files --error-unmatch "$d/checkpoint.pt" >/dev/null 2>&1; then git rm -q --cached "$d/checkpoint.pt"; fi
  elif [ -f "$d/checkpoint.pt" ]; then
    git add -f "$d/checkpoint.pt"
  fi
done
for d in "$root"/search/*/; do
  if [ -f "$d/checkpoint.pt" ]; then git add -f "$d/checkpoint.pt"; fi
done
git add "$root"
git commit -qm "$1"
git log --oneline -1
