"""The main job on bundled data: search, derive, train the found cell, evaluate, and a random control."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import RunError
from ..files import atomic_write_json, is_run_folder, read_run_json
from ..nas.genotype import Genotype, random_genotype
from .config import SearchConfig, TrainConfig, resolve_config
from .formats import read_result
from .loop import RESUME_FREE, plain
from .search import run_search
from .train import run_train

log = logging.getLogger(__name__)


def _part(run: Any, cfg: Any, folder: Path, final: str, *, resume: bool, overwrite: bool, progress: bool,
          **kw: Any) -> dict[str, Any]:  # fmt: skip
    """One part of the demo: read back when finished (with the settings asked), continued from its checkpoint,
    or started; a part stopped before its first checkpoint starts again."""
    if resume and (folder / final).is_file():
        _same_settings(folder, cfg)
        log.info("%s is finished: read back", folder)
        return read_result(folder / final)
    if resume and (folder / "checkpoint.pt").is_file():
        return run(cfg, folder, resume=True, progress=progress, **kw)
    started = resume and is_run_folder(folder)  # stopped after its first files, before its first checkpoint
    return run(cfg, folder, overwrite=overwrite or started, progress=progress, **kw)


def _same_settings(folder: Path, cfg: Any) -> None:
    """A finished part is reused only if it ran with the settings this demo asks for."""
    saved = read_run_json(folder / "config.json")
    differ = sorted(k for k, v in asdict(cfg).items() if k not in RESUME_FREE and plain(saved.get(k)) != plain(v))
    if differ:
        raise RunError(
            f"{folder} was made with other settings ({', '.join(differ)}): continue with the settings it began "
            "with, or start again with --overwrite"
        )


def run_demo(
    out: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    random_control: bool = True,
    search_epochs: int | None = None,
    train_epochs: int | None = None,
    seed: int = 0,
    threads: int = 0,
) -> dict[str, Any]:
    """Search on digits, train the found genotype and (optionally) a random one identically.

    Stopped (Ctrl-C, SIGTERM) in any part, it returns ``{"stopped": True, ...}`` at once; ``resume`` then
    continues each part where it stopped and reads finished parts back.
    """
    out = Path(out)
    t0 = time.time()
    scfg = resolve_config(SearchConfig, "digits", {"epochs": search_epochs, "seed": seed, "threads": threads})
    log.info("1/3 searching a cell on digits (%d epochs)", scfg.epochs)
    opts = dict(resume=resume, overwrite=overwrite, progress=progress)
    search = _part(run_search, scfg, out / "search", "search_result.json", **opts)
    if search.get("stopped"):
        return {"stopped": True, "part": "search", "out": str(out)}
    found = Genotype.from_dict(search["genotype"])
    tcfg = resolve_config(
        TrainConfig,
        "digits",
        {"epochs": train_epochs, "seed": seed, "threads": threads, "genotype": str(out / "search" / "genotype.json")},
    )
    log.info("2/3 training the found cell from scratch (%d epochs)", tcfg.epochs)
    trained = _part(run_train, tcfg, out / "train", "result.json", genotype=found, **opts)
    if trained.get("stopped"):
        return {"stopped": True, "part": "train", "out": str(out)}
    rows = [("searched", found, trained)]
    if random_control:
        rand = random_genotype(seed + 1000)
        log.info("3/3 training a random cell identically (control)")
        control = _part(run_train, tcfg, out / "train_random", "result.json", genotype=rand, **opts)
        if control.get("stopped"):
            return {"stopped": True, "part": "train_random", "out": str(out)}
        rows.append(("random", rand, control))
    seconds = time.time() - t0
    lines = [f"search: {search['seconds']:.0f} s, {scfg.epochs} epochs, genotype {found.to_text()}"]
    for name, _, r in rows:
        lines.append(
            f"{name:>9}: test accuracy {r['test_accuracy']:.4f} ({r['test_images']} held-out digits), "
            f"{r['params']:,} params, {r['macs'] / 1e6:.2f} M MACs, train {r['seconds']:.0f} s"
        )
    lines.append(f"wall time of this call: {seconds:.0f} s; results in {out}")
    summary = {
        "stopped": False,
        "genotype": found.to_dict(),
        "search_seconds": search["seconds"],
        "seconds": seconds,
        "runs": {
            name: {k: r[k] for k in ("test_accuracy", "test_top5", "params", "macs", "seconds")}
            | {"genotype": g.to_dict()}
            for name, g, r in rows
        },
        "text": "\n".join(lines),
    }
    atomic_write_json(out / "summary.json", summary)
    return summary
