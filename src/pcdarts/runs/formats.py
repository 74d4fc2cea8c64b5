"""Run files written by older pcdarts: read in the current format (epochs counted from 1), in one place."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..errors import RunError
from ..files import parse_record, read_jsonl, read_run_json

FILE_FORMAT = 2


"""The run files' format. 2 numbers epochs from 1 in every file, as the console does; 1 numbered them from 0
in files. Files of format 1 are read as format 2 (:func:`epochs_from_one`,
:func:`upgrade_epochs`), so old runs resume, extend, plot and report as they did."""


log = logging.getLogger(__name__)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def epochs_from_one(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A per-epoch log (metrics.jsonl, arch_history.jsonl) numbered from 1, whoever wrote it.

    Only format 1 wrote an epoch 0, so a log holding one is shifted by one as a whole.
    """
    if any(_epoch0(r) for r in records):
        return [{**r, "epoch": r["epoch"] + 1} if _has_epoch(r) else r for r in records]
    return records


def _has_epoch(record: Any) -> bool:
    return isinstance(record, dict) and _is_int(record.get("epoch"))


def _epoch0(record: Any) -> bool:
    return _has_epoch(record) and record["epoch"] == 0


def is_old_format(record: Any) -> bool:
    """A result or checkpoint written before :data:`FILE_FORMAT` 2 (it has no ``format`` key)."""
    return isinstance(record, dict) and "format" not in record


def upgrade_epochs(record: dict[str, Any]) -> dict[str, Any]:
    """A result (result.json, search_result.json, a checkpoint) with its epoch fields numbered from 1.

    Format 1 records carry no ``format`` key; their ``selected_epoch``, ``early_stop.epoch``,
    ``extended_from.selected_epoch`` and ``best.epoch`` counted from 0.
    """
    if not is_old_format(record):
        return record
    out = dict(record)
    if _is_int(out.get("selected_epoch")):
        out["selected_epoch"] += 1
    for key, field in (("early_stop", "epoch"), ("extended_from", "selected_epoch"), ("best", "epoch")):
        inner = out.get(key)
        if isinstance(inner, dict) and _is_int(inner.get(field)):
            out[key] = {**inner, field: inner[field] + 1}
    if isinstance(out.get("history"), list):
        out["history"] = epochs_from_one(out["history"])
    out["format"] = FILE_FORMAT
    return out


def upgrade_model_state(state: dict[str, Any]) -> dict[str, Any]:
    """A best.pt / last.pt state whose ``epoch`` (the model's epoch) counts from 1, as written since format 2."""
    if not is_old_format(state):
        return state
    out = dict(state, format=FILE_FORMAT)
    if _is_int(out.get("epoch")):
        out["epoch"] += 1
    return out


def read_result(path: str | Path) -> dict[str, Any]:
    """A run's result.json or search_result.json, its epochs numbered from 1 (:data:`FILE_FORMAT`)."""
    return upgrade_epochs(read_run_json(path))


def _parsed(line: str) -> Any:
    return parse_record(line.encode())


def _shifted(line: str) -> str:
    rec = _parsed(line)
    if isinstance(rec, dict) and _is_int(rec.get("epoch")):
        rec["epoch"] += 1
        return json.dumps(rec)
    return line


def epoch_of_line(line: str) -> int:
    rec = parse_record(line.encode())
    try:
        return 1 << 30 if rec is None else int(rec.get("epoch", -1))
    except (TypeError, ValueError, OverflowError):
        return 1 << 30


def read_epoch_log(path: Path, *, count_bad: bool = False) -> Any:
    """A per-epoch JSONL log (metrics.jsonl, arch_history.jsonl), its epochs numbered from 1 in any format."""
    records, bad = read_jsonl(path, count_bad=True)
    records = epochs_from_one(records)
    return (records, bad) if count_bad else records


def upgrade_log_lines(lines: list[str]) -> list[str]:
    """A format-1 log (epochs counted from 0) renumbered from 1, as a resumed run goes on. Only while an epoch 0
    is left, so a log renumbered by a resume killed before its next checkpoint is not shifted twice."""
    return [_shifted(ln) for ln in lines] if any(_epoch0(_parsed(ln)) for ln in lines) else lines


ADDED_SETTINGS = {"space": "darts", "ops": [], "cell": "darts", "holdout_images": 0}
"""Settings added after runs were first written, with the value those older runs used."""

PIN_ADDED = {
    "study": {"primary": None, "rule": "effect", "retrain_random": 0, "oneshot_arm": None, "oneshot_images": 2000},
    "calibration": {"cell": "darts"},
}
"""Study and calibration settings added after their folders were first pinned, at the values those ran with."""


def without_added(settings: dict[str, Any], kind: str) -> dict[str, Any]:
    """A study's or calibration's settings as its pin file holds them: a setting added later is left out while
    it has the value older folders ran with, so their pins still match byte for byte."""
    return {k: v for k, v in settings.items() if k not in PIN_ADDED[kind] or v != PIN_ADDED[kind][k]}


def epoch_part(state: dict[str, Any] | None) -> tuple[float, float]:
    """Wall and CPU seconds the epoch a run stopped inside had taken (0 without a stop inside one, or from a
    checkpoint written before they were kept); a damaged record is bookkeeping only: warned about, not fatal."""
    if not state or not state.get("mid_epoch") or "epoch_part" not in state:
        return 0.0, 0.0
    part = state["epoch_part"]
    try:
        wall, cpu = float(part["seconds"]), float(part["cpu_seconds"])
    except (TypeError, KeyError, ValueError):
        log.warning("the checkpoint's record of the stopped epoch's time is damaged: that epoch's time restarts")
        return 0.0, 0.0
    return wall, cpu


OLDER_SELECT_PIN = "select_config.json"
"""What a selection folder's settings were pinned in before it was config.json."""


def check_older_selection(out: Path) -> None:
    """Refuse a selection folder that an older pcdarts stopped part-way: it left select_checkpoint.pt (and no
    checkpoint.pt), whose layout is not read."""
    if (out / "select_checkpoint.pt").is_file() and not (out / "checkpoint.pt").is_file():
        raise RunError(
            f"{out} holds a selection stopped part-way by an older pcdarts (select_checkpoint.pt): finish it with "
            "that version, or delete the folder's files to select again"
        )


def older_select_pin(out: Path) -> Path | None:
    """The select_config.json that pinned a selection folder written by an older pcdarts, if it holds one."""
    f = out / OLDER_SELECT_PIN
    pin = read_run_json(f) if f.is_file() else None
    if isinstance(pin, dict) and {"tune_epochs", "search_arch_sha256"} <= set(pin):
        return f
    return None


def ties_text(result: dict[str, Any]) -> str:
    """How many of a selection's decisions tied; a selection made before ties were counted does not say."""
    if result.get("ties") is None:
        return "ties not counted (a selection made before they were)"
    return f"{result['ties']} decisions were ties, broken by the magnitude rule"


def older_pin_free(pin: Path, record: dict[str, Any]) -> set[str]:
    """Settings an older select_config.json (``pin``, read as ``record``) may differ in from a new pin: it
    recorded no ``search_arch_sha256`` for a search without arch.json."""
    if pin.name == OLDER_SELECT_PIN and record.get("search_arch_sha256") is None:
        return {"search_arch_sha256"}
    return set()


def older_train_folder(out: Path, digest: str) -> Path | None:
    """A cell's training folder as Study I named it (``train/g<digest>``, no epoch budget or seed in the name),
    if it holds a finished training; the caller checks it was made with the settings it wants."""
    old = out / "train" / f"g{digest}"
    return old if (old / "result.json").is_file() else None
