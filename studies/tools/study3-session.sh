#!/usr/bin/env bash
# Study III's sessions (docs/STUDY3_PLAN.md): two one-thread `pcdarts study --preset fmnist-study3` workers from a
# git worktree of the study's fixed revision, so changes to main cannot leak in; each takes the next unit the
# other is not running and resumes where the last session stopped. The product needs none of this (two
# `pcdarts study` processes share a folder); it serves this repository's rule that a study runs from a fixed
# commit and commits its results as they come. It leaves with the study once Study III is complete.
#   STUDY3_REV=REV studies/tools/study3-session.sh start [LOG_DIR]
#   studies/tools/study3-session.sh stop     (each worker finishes its step, writes its checkpoint and exits)
#   studies/tools/study3-session.sh commit [--session-end] "MESSAGE"
# commit stages the results (JSON, metrics, logs); with --session-end a unit still in progress keeps its
# checkpoint.pt in git so the next session resumes it; once a unit is done its checkpoint leaves the tree.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD root=docs/study3/fmnist tree=/work/study3
py=$repo/.venv/bin/python
case "${1:-}" in
start)
  rev=${STUDY3_REV:?set STUDY3_REV to the study revision named in docs/STUDY.md}
  logs=${2:-/work/study3-logs}
  mkdir -p "$logs" "$root"
  git worktree prune
  [ -d "$tree" ] || git worktree add --detach "$tree" "$rev"
  [ "$(git -C "$tree" rev-parse --short=7 HEAD)" = "${rev:0:7}" ] || { echo "$tree is not at $rev"; exit 2; }
  for w in 1 2; do
    (cd /tmp && OMP_NUM_THREADS=1 PYTHONPATH="$tree/src" nohup "$py" -m pcdarts study --preset fmnist-study3 \
      --out "$repo/$root" --threads 1 --no-progress >>"$logs/study3-$w.log" 2>&1 &)
    echo "worker $w: log $logs/study3-$w.log"
    sleep 8  # the two do not start their first unit at the same instant
  done
  ;;
stop)
  pgrep -f "python -m pcdarts study --preset fmnist-study3" | xargs -r kill -TERM
  for _ in $(seq 150); do pgrep -f "python -m pcdarts study --preset fmnist-study3" >/dev/null || break; sleep 2; done
  echo "workers stopped"
  ;;
commit)
  shift
  keep_open=0
  if [ "${1:-}" = "--session-end" ]; then keep_open=1; shift; fi
  msg=${1:?give a commit message}
  git add "$root"
  "$py" - "$root" "$keep_open" <<'PY'
import json, subprocess, sys
from pathlib import Path

root = Path(sys.argv[1])
done = set()
if (root / "study.json").is_file():
    for cell in json.loads((root / "study.json").read_text()).get("cells", []):
        done.update(str(root / cell[k]) for k in ("train_run", "search_run") if cell.get(k))
keep, drop = [], []
for ckpt in sorted(root.glob("*/*/checkpoint.pt")):
    run = ckpt.parent
    if run.parent.name == "train":
        finished = (run / "result.json").is_file()
    else:  # a finished search; the primary arm's also needs its one-shot scores, computed from this checkpoint
        cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
        primary = cfg.get("k") == 4 and cfg.get("edge_norm") is True
        finished = str(run) in done or (
            (run / "search_result.json").is_file() and (not primary or (run / "oneshot.json").is_file())
        )
    (drop if finished else keep).append(str(ckpt))
tracked = set(subprocess.run(["git", "ls-files", str(root)], capture_output=True, text=True).stdout.split())
for f in drop:
    if f in tracked:
        subprocess.run(["git", "rm", "-q", "--cached", f], check=True)
if keep and sys.argv[2] == "1":
    subprocess.run(["git", "add", "-f", *keep], check=True)
elif keep:  # mid-session: a unit in progress keeps the checkpoint it had in git until the session's end
    subprocess.run(["git", "reset", "-q", "--", *keep], check=True)
for f in tracked:  # a checkpoint of a unit that finished and whose file is gone: out of the tree too
    if f.endswith(".pt") and not Path(f).is_file():
        subprocess.run(["git", "rm", "-q", "--cached", f], check=True)
PY
  git commit -qm "$msg"
  git log --oneline -1
  ;;
*)
  sed -n 2,11p "$0"; exit 2 ;;
esac
