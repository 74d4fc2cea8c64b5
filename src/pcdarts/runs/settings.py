"""The settings a search or training runs with, from what its caller gave: the one place that knows how a
run's own saved settings (on resume), the search a training starts from, a preset, the dataset's defaults and
an image folder's own images combine. The CLI passes its flags here; a Python caller can do the same.
"""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError, PCDartsError, RunError
from ..files import load_checkpoint, read_run_json
from .config import SearchConfig, TrainConfig, genotype_cell, plausible_setting, resolve_config
from .presets import check_preset, preset_values
from .sizing import auto_batch

log = logging.getLogger(__name__)

DEFAULT_DATASET = "digits"  # the bundled one: a first command runs offline


def saved_settings(out: str | Path) -> dict[str, Any] | None:
    """A run folder's own settings, to resume it with nothing else given: its config.json, else the copy in its
    checkpoint (warned about); None where the folder has neither. Values of the wrong type are a ConfigError.
    A training's cell is the one it resolved (``genotype_resolved``), not how it was named."""
    out = Path(out)
    if not (out / "config.json").is_file():
        return None
    try:
        saved = read_run_json(out / "config.json")
    except RunError:  # the checkpoint holds the config too
        saved = load_checkpoint(out / "checkpoint.pt").get("config")
        saved = saved if isinstance(saved, dict) else None
        log.warning("%s is unreadable: resuming with the settings stored in checkpoint.pt", out / "config.json")
    if saved is None:
        return None
    known = {f.name: f.type for c in (SearchConfig, TrainConfig) for f in fields(c)}
    bad = [k for k, v in saved.items() if k in known and v is not None and not plausible_setting(known[k], v)]
    if bad:
        raise ConfigError(
            f"{out / 'config.json'} has values of the wrong type ({', '.join(sorted(bad)[:4])}): "
            "restore the file, or resume with every flag given"
        )
    if "genotype_resolved" in saved:
        saved["genotype"] = json.dumps(saved["genotype_resolved"])
    return saved


def search_data(genotype: str | None, dataset: str | None) -> dict[str, Any]:
    """``train --genotype SEARCH_RUN``: the search's dataset, data path and image size, for a training that
    names none of them (or the same dataset); {} for anything that is not a readable search run folder."""
    run = Path(genotype) if genotype else None
    if run is None or not (run / "config.json").is_file():
        return {}
    try:
        saved = read_run_json(run / "config.json")
    except RunError:
        return {}
    if saved.get("kind") != "search" or dataset not in (None, saved.get("dataset")):
        return {}
    taken = {"dataset": saved.get("dataset")} | {k: saved[k] for k in ("data", "image_size") if saved.get(k)}
    log.info("data as the search in %s: %s", run, ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in taken.items()))
    return taken


def _base(out: str | Path | None, resume: bool, dataset: str | None) -> tuple[dict[str, Any] | None, str]:
    saved = saved_settings(out) if resume and out else None
    dataset = dataset or (saved or {}).get("dataset") or DEFAULT_DATASET
    if saved is not None and saved.get("dataset") != dataset:
        saved = None  # another dataset: the resume check reports the difference
    return saved, dataset


def search_settings(
    overrides: dict[str, Any],
    *,
    dataset: str | None = None,
    preset: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    need_data: bool = True,
) -> SearchConfig:
    """The SearchConfig a search runs with. ``overrides``: the settings given (None: not given), where
    ``batch_size="auto"`` asks for the largest batch that fits. A new search of an image folder without a
    preset takes its defaults from the images there (how many: read now); with ``need_data=False`` a folder
    that cannot be read keeps the plain defaults instead of failing (to print a config without the data)."""
    overrides = dict(overrides)
    auto = overrides.get("batch_size") == "auto"
    if auto:
        overrides["batch_size"] = None
    saved, dataset = _base(out, resume, dataset)
    cfg = resolve_config(SearchConfig, dataset, overrides, preset_values(preset, "search", dataset), saved)
    if auto:
        cfg = auto_batch(cfg)
    if cfg.dataset == "folder" and saved is None and preset is None:
        from .inputs import load_data
        from .sizing import fit_folder_search

        try:
            n_images: int | None = load_data(cfg).train_size
        except PCDartsError:
            if need_data:
                raise
            n_images = None
        if n_images is not None:
            explicit = {k for k, v in overrides.items() if v is not None} | ({"batch_size"} if auto else set())
            cfg, line = fit_folder_search(cfg, n_images, explicit)
            log.info("%s", line)
    check_preset(preset, cfg)
    return cfg


def train_settings(
    overrides: dict[str, Any],
    *,
    dataset: str | None = None,
    preset: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
) -> TrainConfig:
    """The TrainConfig a training runs with. A ``genotype`` that names a search run folder also gives the
    data (dataset, data path, image size) unless the caller named them; ``max_macs`` chooses the width, so it
    and ``init_channels`` together are refused for a new training."""
    overrides = dict(overrides)
    if not resume:
        inherited = search_data(overrides.get("genotype"), dataset)
        dataset = dataset or inherited.pop("dataset", None)
        inherited.pop("dataset", None)
        for key, value in inherited.items():
            if overrides.get(key) is None:
                overrides[key] = value
    saved, dataset = _base(out, resume, dataset)
    cfg = resolve_config(TrainConfig, dataset, overrides, preset_values(preset, "train", dataset), saved)
    if cfg.max_macs and overrides.get("init_channels") is not None and saved is None:
        raise ConfigError("--max-macs chooses the init channels: give --max-macs or --init-channels, not both")
    if preset is not None:
        check_preset(preset, cfg, cell=genotype_cell(cfg.genotype))
    return cfg
