"""The pictures of a search run: its cells, alpha/beta heatmaps, genotype timeline and curves.

One drawing for ``pcdarts plot --run`` and the report's search section, so both show the same four pictures
of the same data; ``plot_search_run`` adds what a user asking for them by hand needs (the folder and the
epochs checked first, files that exist not replaced unless told).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import check_target
from ..nas.genotype import Genotype
from ..runs.formats import read_epoch_log
from .plot import alpha_heatmaps, curves, genotype_timeline, plot_genotype

log = logging.getLogger(__name__)

PICTURES = {"cells": "cells.png", "alpha_beta": "alpha_beta.png", "timeline": "timeline.png", "curves": "curves.png"}
"""The file each picture of a search run gets."""


@dataclass
class SearchPictures:
    """What was drawn: file per picture, the renderer of the cells, the epoch the genotype settled at."""

    files: dict[str, Path]
    renderer: str | None
    stable_epoch: int | None


def draw_search(
    history: list[dict[str, Any]],
    metrics: list[dict[str, Any]],
    genotype: Genotype | None,
    out: Path,
    *,
    epochs: list[int] | None = None,
    renderer: str = "auto",
) -> SearchPictures:
    """Draw into ``out`` each picture whose data is there: cells from a genotype, heatmaps and timeline from
    the arch history, curves from the metrics. Damaged or partial runs still show what they have."""
    files: dict[str, Path] = {}
    used = stable = None
    if genotype is not None:
        used = plot_genotype(genotype, out / PICTURES["cells"], renderer=renderer)
        files["cells"] = out / PICTURES["cells"]
    if history:
        files["alpha_beta"] = alpha_heatmaps(history, out / PICTURES["alpha_beta"], epochs)
        files["timeline"], stable = genotype_timeline(history, out / PICTURES["timeline"])
    if metrics:
        files["curves"] = curves(metrics, out / PICTURES["curves"], "search")
    return SearchPictures(files, used, stable)


def plot_search_run(
    run: str | Path,
    out: str | Path,
    *,
    genotype: Genotype | None = None,
    epochs: list[int] | None = None,
    renderer: str = "auto",
    overwrite: bool = False,
) -> SearchPictures:
    """All four pictures of a search run folder into ``out``, its cells from ``genotype`` or else the latest
    one the search derived (the final one once it has finished)."""
    run, out = Path(run), Path(out)
    history, bad = read_epoch_log(run / "arch_history.jsonl", count_bad=True)
    if not history:
        if (run / "arch_history.jsonl").is_file():
            raise ConfigError(f"{run / 'arch_history.jsonl'} holds no readable line ({bad} damaged): restore it")
        raise ConfigError(f"{run} has no arch_history.jsonl: is it a search run folder?")
    if bad:
        log.warning("warning: %d unreadable line(s) of %s skipped", bad, run / "arch_history.jsonl")
    missing = [e for e in epochs or [] if e not in {h["epoch"] for h in history}]
    if missing:  # said before anything else: the epochs asked for are the user's mistake to fix first
        raise ConfigError(
            f"no epoch {missing[0]} in this search: it has epochs {history[0]['epoch']}..{history[-1]['epoch']}"
        )
    for name in PICTURES.values():
        check_target(out / name, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    genotype = genotype or Genotype.from_dict(history[-1]["genotype"])
    metrics = read_epoch_log(run / "metrics.jsonl")
    return draw_search(history, metrics, genotype, out, epochs=epochs, renderer=renderer)
