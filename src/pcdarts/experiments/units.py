"""Work units of a study or calibration: one folder per sub-run, reuse checks, pins, and the
scheduler two processes share.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypeVar

from ..errors import RunError
from ..files import atomic_write_json, read_run_json
from ..nas.genotype import Genotype
from ..runs.config import SearchConfig, TrainConfig
from ..runs.environment import earlier_runs
from ..runs.formats import older_train_folder, read_result
from ..runs.loop import RESUME_FREE, plain
from ..runs.rundir import RunBusy, RunLock, check_out_path
from ..runs.train import read_test_once, run_train

log = logging.getLogger(__name__)


C = TypeVar("C")


def with_threads(cfg: C, threads: int) -> C:
    """A unit's run settings with the thread count its study or calibration was started with (0: as set)."""
    return replace(cfg, threads=threads) if threads and cfg is not None else cfg


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


def check_reused(run: Path, cfg: SearchConfig | TrainConfig) -> None:
    """A finished sub-run is reused only if it was made with the settings this study asks for.

    Settings that do not change a result (threads, device, data path, ...) may differ; a setting the
    sub-run's config.json lacks (added to pcdarts later) counts as its default.
    """
    f = run / "config.json"
    try:
        saved = read_run_json(f)
    except RunError:
        raise RunError(f"{f} is missing or unreadable: delete {run} to have the study redo it") from None
    defaults = asdict(type(cfg)())
    for key, value in asdict(cfg).items():
        if key not in RESUME_FREE and plain(saved.get(key, defaults.get(key))) != plain(value):
            raise RunError(
                f"{run} was made with {key}={saved.get(key)!r}, this study asks for {value!r}: delete that "
                "folder to redo it, or start the study in a new folder"
            )


PENDING_PIN = "study_config_searches.json"  # all but the training epochs, by a run started before its budget


def _without_epochs(d: dict[str, Any]) -> dict[str, Any]:
    """A pinned study's settings but the training epochs (what a run waiting for its budget pins)."""
    if isinstance(d.get("train"), dict):
        d = {**d, "train": {k: v for k, v in d["train"].items() if k != "epochs"}}
    return d


@contextmanager
def briefly_locked(out: Path, attempts: int = 40) -> Iterator[None]:
    """The folder's lock for a short read-then-write that other processes sharing it also do (a pin, the
    study's list of cells): taken again every 0.25 s while another process holds it, RunBusy after that."""
    for attempt in range(attempts):
        try:
            lock = RunLock(out).__enter__()
        except RunBusy:
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
            continue
        try:
            yield
        finally:
            lock.__exit__(None, None, None)
        return


def number(v: Any) -> bool:
    """A JSON number (not a bool), as a listed cell's figures must be."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def with_listed(
    path: Path,
    config: dict[str, Any],
    field: str,
    mine: list[dict[str, Any]],
    order: dict[Hashable, int],
    key: Callable[[dict[str, Any]], Hashable],
    kept: Callable[[dict[str, Any]], bool],
) -> list[dict[str, Any]]:
    """``mine`` and the entries that ``path`` (a study.json or fidelity.json, which every process sharing the
    folder rewrites) lists under ``field`` for the same ``config``, one per key, in ``order``.

    So the file lists every finished unit whichever process wrote it last. An entry of the file is carried
    forward only if ``kept`` says it is well formed and its runs are still in the folder (a user may have
    deleted one to redo it) and its key is planned; a missing, damaged or foreign file contributes nothing.
    Call it, and write the file, under :func:`briefly_locked`.
    """
    try:
        written = read_run_json(path)
    except RunError:
        written = None
    same = isinstance(written, dict) and written.get("config") == json.loads(json.dumps(config))
    theirs = written.get(field) if same else None
    entries = {key(e): e for e in mine}
    for e in theirs if isinstance(theirs, list) else []:
        if isinstance(e, dict) and kept(e) and key(e) in order:
            entries.setdefault(key(e), e)
    return [entries[k] for k in sorted(entries, key=order.__getitem__)]


def check_pinned(out: Path, name: str, mine: dict[str, Any], what: str) -> None:
    """Pin a folder to its settings: the first run writes ``name``, later runs must ask for the same."""
    check_out_path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / name
    with briefly_locked(out):  # two processes starting at once cannot both pin other settings
        if not saved.is_file():
            _check_unpinned(out, what)
        if saved.is_file():
            theirs = read_run_json(saved)
            if theirs != mine:
                diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                raise RunError(
                    f"{out} holds a {what} with other settings ({', '.join(diff)}): run it with the same "
                    "settings to continue, or choose a new folder"
                )
        else:
            atomic_write_json(saved, mine)


PINS = ("study_config.json", PENDING_PIN, "fidelity_config.json")


"""The files that make a folder a study's or a calibration's (a study may run in its calibration's folder)."""


def _check_unpinned(out: Path, what: str) -> None:
    """A folder gets a new pin only when it is empty or already a study's or calibration's: a user's folder
    with files of its own (a study.json or study.png of theirs, say) is refused with what it holds."""
    found = [e.name for e in out.iterdir() if e.name != RunLock.NAME and not e.name.endswith(".tmp")]
    if not found or any(_pinned(out / p) for p in PINS):
        return
    shown = ", ".join(repr(n) for n in sorted(found)[:4]) + (", ..." if len(found) > 4 else "")
    raise RunError(
        f"{out} is not empty and holds no pcdarts {what} ({shown}): --out wants a new or empty folder, or the "
        f"folder of a {what} to continue"
    )


def _pinned(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    try:
        return isinstance(read_run_json(path), dict)
    except RunError:
        return False


def train_folder(out: Path, cfg: TrainConfig, genotype: Genotype) -> Path:
    """A cell's training folder in a study or calibration: one per (cell, epoch budget, training seed).

    The rest of the protocol is pinned by the folder's config file and checked on reuse. Study I's
    folders (``g<digest>`` alone, :func:`~pcdarts.runs.formats.older_train_folder`) are still found.
    """
    digest = _digest(genotype.to_dict())
    old = older_train_folder(out, digest)
    if old is not None:
        try:
            check_reused(old, cfg)
            return old
        except RunError:  # made with another protocol, seed or budget: this one gets its own folder
            pass
    return out / "train" / f"g{digest}-e{cfg.epochs}-t{cfg.seed}"


def _cpu_sum(epochs: Iterable[Mapping[str, Any]], *more: float | None) -> float | None:
    """CPU seconds of the epochs (and ``more``), or None if any of them was run before CPU time was kept."""
    parts = [m.get("epoch_cpu_seconds") for m in epochs] + list(more)
    return None if any(p is None for p in parts) else float(sum(parts))


def train_cell(
    out: Path, cfg: TrainConfig, genotype: Genotype, *, progress: bool = True, read_test: bool = True
) -> dict[str, Any]:
    """Train ``genotype`` under ``cfg`` in its folder of ``out``, or read the finished training back.

    ``read_test=False`` (a calibration) never reads the test split; a later call with ``read_test``
    reads it once for the shipped model. Raises ``RunBusy`` while another process trains that cell.
    """
    run = train_folder(out, cfg, genotype)
    if (run / "result.json").is_file():
        check_reused(run, cfg)
    else:
        resume = (run / "checkpoint.pt").is_file()
        log.info("training %s (%d epochs, seed %d) -> %s", genotype.to_text()[:50] + "...", cfg.epochs, cfg.seed, run)
        result = run_train(
            cfg, run, resume=resume, overwrite=not resume, progress=progress, genotype=genotype, read_test=read_test
        )
        if result.get("stopped"):
            raise KeyboardInterrupt
    if read_test:
        with RunLock(run):  # the one reading of the test split, by one process
            result = read_test_once(cfg, run, device="cpu" if cfg.device == "auto" else cfg.device)
    else:
        result = read_result(run / "result.json")
    result["run"] = str(run.relative_to(out))
    result["train_seed"] = cfg.seed
    result.update(run_revisions(run))
    return result


def run_revisions(run: Path, prefix: str = "") -> dict[str, Any]:
    """The code that made a sub-run, for its study cell, from the run's environment.json.

    ``revision`` is the code that wrote the file last (None without one), ``earlier_revisions`` the other
    code that ran earlier parts of it (``environment.write_environment``); ``prefix`` names the part.
    """
    try:
        env = read_run_json(run / "environment.json")
    except RunError:
        return {f"{prefix}revision": None}
    found = {f"{prefix}revision": env.get("git")}
    earlier = [e.get("git") for e in earlier_runs(env)]
    if earlier:
        found[f"{prefix}earlier_revisions"] = earlier
    return found


class BudgetPending(Exception):
    """A unit has done what it can and needs the training budget, which its calibration has not chosen yet."""


def run_units(
    units: list[tuple[str, Callable[[], dict[str, Any]]]],
    record: Callable[[int, dict[str, Any]], None],
    *,
    poll_seconds: float = 30.0,
) -> list[int]:
    """Run work units in order; one another process holds is skipped and taken up again once it is free.

    Two processes running the same study or calibration thus share its units without running one twice.
    A unit that raises ``BudgetPending`` is tried again on the next pass; the units still waiting for the
    budget when nothing else is left to do (or running elsewhere) are returned, not waited for.
    """
    pending, tried = list(range(len(units))), set()
    while pending:
        busy, waiting, progressed = [], [], False
        for i in pending:
            name, unit = units[i]
            level = logging.DEBUG if i in tried else logging.INFO  # a unit tried again says so once
            tried.add(i)
            log.log(level, "unit %d/%d: %s", i + 1, len(units), name)
            try:
                cell = unit()
            except RunBusy as exc:
                log.log(level, "%s: %s; taking the next unit", name, exc)
                busy.append(i)
                continue
            except BudgetPending as exc:
                log.log(level, "%s: %s", name, exc)
                waiting.append(i)
                continue
            record(i, cell)
            progressed = True
        if not progressed:
            if not busy:
                return waiting
            time.sleep(poll_seconds)  # everything left is running elsewhere: read it back when it is done
        pending = sorted(busy + waiting)
    return []
