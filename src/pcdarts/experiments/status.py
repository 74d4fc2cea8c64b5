"""Where a running study stands, without its results: units finished per arm, runs in progress, time left.

A study runs for hours across sessions and processes; its owner needs to know how far it is without reading
an accuracy before the study is complete (a pre-registered study gives no reading before then). So this
reads only counts, epochs and seconds.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RunError
from ..files import read_run_json
from ..runs.formats import read_epoch_log
from .units import PENDING_PIN

KINDS = {"searched": "searched cells", "random": "random cells", "retrain": "second trainings"}


def _unit_seconds(cell: dict[str, Any]) -> float:
    """Wall seconds one finished unit took: its search (with selection and one-shot scores) and training."""
    keys = ("search_seconds", "oneshot_seconds", "train_seconds") if cell["kind"] == "searched" else ("train_seconds",)
    return sum(float(cell.get(k) or 0.0) for k in keys)


def _in_progress(out: Path) -> list[dict[str, Any]]:
    """Run folders with a checkpoint and no result yet: stopped or running units, with the epoch reached."""
    rows = []
    for part, done in (("search", "search_result.json"), ("train", "result.json")):
        for run in sorted((out / part).glob("*/checkpoint.pt")):
            run = run.parent
            if (run / done).is_file():
                continue
            try:
                epochs = read_run_json(run / "config.json").get("epochs")
            except RunError:
                epochs = None
            logged = read_epoch_log(run / "metrics.jsonl") if (run / "metrics.jsonl").is_file() else []
            rows.append({"run": f"{part}/{run.name}", "epoch": logged[-1]["epoch"] if logged else 0, "epochs": epochs})
    return rows


def study_status(out: str | Path) -> dict[str, Any]:
    """Counts of a study folder's finished units per arm against its plan, its units in progress, and the
    wall time left for one process at the finished units' median time per kind. No accuracy is read.

    The counts are study.json's, which every process of a shared study rewrites, under the folder's lock, with
    its own units and those already listed there each time a unit finishes or is read back."""
    out = Path(out)
    pins = [out / "study_config.json", out / PENDING_PIN]
    pin = next((p for p in pins if p.is_file()), None)
    if pin is None:
        raise ConfigError(f"{out} holds no study (no study_config.json): give the --out of a `pcdarts study`")
    cfg = read_run_json(pin)
    arms = [a["name"] for a in cfg.get("arms", [])]
    planned = {a: int(cfg.get("searches", 0)) for a in arms}
    planned["random"] = int(cfg.get("random_cells", 0))
    if cfg.get("retrain_random"):
        planned["random-retrain"] = min(int(cfg["retrain_random"]), planned["random"])
    study = read_run_json(out / "study.json") if (out / "study.json").is_file() else {}
    cells = study.get("cells", [])
    finished = {a: 0 for a in planned}
    seconds: dict[str, list[float]] = {}
    for c in cells:
        finished[c["arm"]] = finished.get(c["arm"], 0) + 1
        seconds.setdefault(c["kind"], []).append(_unit_seconds(c))
    kind_of = {a: "searched" for a in arms} | {"random": "random", "random-retrain": "retrain"}
    median = {k: statistics.median(v) for k, v in seconds.items() if v}
    left = {a: max(0, n - finished.get(a, 0)) for a, n in planned.items()}
    unknown = sorted({kind_of[a] for a, n in left.items() if n and kind_of[a] not in median})
    return {
        "folder": str(out),
        "complete": bool(study.get("complete")),
        "planned": planned,
        "finished": finished,
        "units": sum(planned.values()),
        "units_finished": sum(min(finished.get(a, 0), n) for a, n in planned.items()),
        "in_progress": _in_progress(out),
        "median_unit_seconds": median,
        "seconds_left": sum(n * median.get(kind_of[a], 0.0) for a, n in left.items()),
        "unknown_kinds": unknown,
    }


def format_status(status: dict[str, Any]) -> str:
    """The status as a few lines for the console."""
    arms = ", ".join(f"{a} {status['finished'].get(a, 0)}/{n}" for a, n in status["planned"].items())
    lines = [f"study {status['folder']}: {status['units_finished']} of {status['units']} units finished ({arms})"]
    if status["in_progress"]:
        runs = "; ".join(
            f"{r['run']} epoch {r['epoch']}" + (f" of {r['epochs']}" if r["epochs"] else "")
            for r in status["in_progress"]
        )
        lines.append(f"in progress or stopped: {runs}")
    if status["complete"]:
        lines.append("complete: `pcdarts study` with the same settings prints the results")
        return "\n".join(lines)
    times = ", ".join(f"{KINDS[k]} {v / 60:.0f} min each" for k, v in status["median_unit_seconds"].items())
    left = f"left: about {status['seconds_left'] / 3600:.1f} hours of one process"
    if times:
        left += f" at the finished units' median wall times ({times})"
    if status["unknown_kinds"]:
        left += f", plus the {' and '.join(KINDS[k] for k in status['unknown_kinds'])} (none finished yet)"
    lines.append(left)
    lines.append("counts from study.json; no results before the study is complete")
    return "\n".join(lines)
