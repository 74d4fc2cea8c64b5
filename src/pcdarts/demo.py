"""The main job on bundled data: search, derive, train the found cell, evaluate, and a random control."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from .config import SearchConfig, TrainConfig, resolve_config
from .genotype import Genotype, random_genotype
from .rundir import atomic_write_json
from .search import run_search
from .train import run_train

log = logging.getLogger(__name__)


def run_demo(
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
    random_control: bool = True,
    search_epochs: int | None = None,
    train_epochs: int | None = None,
    seed: int = 0,
    threads: int = 0,
) -> dict[str, Any]:
    """Search on digits, train the found genotype and (optionally) a random one identically."""
    out = Path(out)
    t0 = time.time()
    scfg = resolve_config(SearchConfig, "digits", {"epochs": search_epochs, "seed": seed, "threads": threads})
    log.info("1/3 searching a cell on digits (%d epochs)", scfg.epochs)
    search = run_search(scfg, out / "search", overwrite=overwrite, progress=progress)
    found = Genotype.from_dict(search["genotype"])
    t_search = time.time() - t0
    tcfg = resolve_config(
        TrainConfig,
        "digits",
        {"epochs": train_epochs, "seed": seed, "threads": threads, "genotype": str(out / "search" / "genotype.json")},
    )
    log.info("2/3 training the found cell from scratch (%d epochs)", tcfg.epochs)
    trained = run_train(tcfg, out / "train", overwrite=overwrite, progress=progress, genotype=found)
    rows = [("searched", found, trained)]
    if random_control:
        rand = random_genotype(seed + 1000)
        log.info("3/3 training a random cell identically (control)")
        rows.append(
            (
                "random",
                rand,
                run_train(tcfg, out / "train_random", overwrite=overwrite, progress=progress, genotype=rand),
            )
        )
    seconds = time.time() - t0
    lines = [f"search: {t_search:.0f} s, {scfg.epochs} epochs, genotype {found.to_text()}"]
    for name, _, r in rows:
        lines.append(
            f"{name:>9}: test accuracy {r['test_accuracy']:.4f} ({r['test_images']} held-out digits), "
            f"{r['params']:,} params, {r['macs'] / 1e6:.2f} M MACs, train {r['seconds']:.0f} s"
        )
    lines.append(f"total wall time: {seconds:.0f} s; results in {out}")
    summary = {
        "genotype": found.to_dict(),
        "search_seconds": t_search,
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
