#!/usr/bin/env bash
# Commit Study III's progress (docs/study3/fmnist): results only (JSON, metrics, logs of finished units).
# With --session-end, a unit still in progress keeps its checkpoint.pt in git so the next session resumes it
# (a training without result.json; a search whose study cell is not yet in study.json); once the unit is
# done its checkpoint leaves the tree. usage: scripts/study3_commit.sh [--session-end] "commit message"
set -euo pipefail
cd "$(dirname "$0")/.."
root=docs/study3/fmnist
keep_open=0
if [ "${1:-}" = "--session-end" ]; then keep_open=1; shift; fi
"$PWD/.venv/bin/python" - "$root" "$keep_open" <<'PY'
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
# a checkpoint of a unit that finished and whose file is gone: out of the tree too
for f in tracked:
    if f.endswith(".pt") and not Path(f).is_file():
        subprocess.run(["git", "rm", "-q", "--cached", f], check=True)
PY
git add "$root"
git commit -qm "$1"
git log --oneline -1
