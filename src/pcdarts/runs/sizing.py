"""Settings a user left open, chosen for them: the batch that fits the device, a folder search that can learn,
the width that fits a multiply-add budget. Each logs what it chose."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any

from ..errors import ConfigError, RunError
from ..nas.genotype import Genotype
from ..nas.network import build_network, count_macs
from .config import PAPER_WARMUP_SHARE, SearchConfig, TrainConfig
from .environment import pick_device
from .inputs import load_data
from .memory import auto_batch_size
from .search import MIN_ARCH_STEPS, MIN_OP_CHANNELS
from .train import model_args

log = logging.getLogger(__name__)


AUTO_MIN_STEPS, AUTO_MAX_LR_SCALE = 8, 4.0


def auto_batch(cfg: SearchConfig) -> SearchConfig:
    """``--batch-size auto``: the largest batch that fits, with the weight lr scaled linearly (as the paper does)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "--batch-size auto under torchrun would let each process probe and choose its own batch (then their "
            "steps differ and the collectives hang): find it once with `pcdarts search --batch-size auto "
            "--print-config` and pass that number"
        )
    ds = load_data(cfg)
    device = pick_device(cfg.device)
    batch, info = auto_batch_size(
        cfg, in_channels=ds.in_channels, size=ds.image_size[0], num_classes=ds.num_classes, device=device
    )
    n = ds.train_size
    # at least AUTO_MIN_STEPS steps an epoch (one giant step learns nothing), and the linear lr scaling capped
    batch = min(batch, max(8, int(n * cfg.train_portion) // AUTO_MIN_STEPS // 8 * 8))
    lr = cfg.lr * min(batch / cfg.batch_size, AUTO_MAX_LR_SCALE)
    log.info(
        "auto batch size %d (predicted %.0f MiB of %.0f MiB available); lr %.4g -> %.4g",
        batch,
        (info["per_sample_bytes"] * batch + info["state_bytes"]) / 2**20,
        info["available_bytes"] / 2**20,
        cfg.lr,
        lr,
    )
    return replace(cfg, batch_size=batch, lr=lr)


def fit_folder_search(cfg: SearchConfig, n_images: int, explicit: set[str]) -> tuple[SearchConfig, str]:
    """Defaults for a search on a folder of ``n_images``, so that it passes its own learnability checks where
    the data allows: 16 channels (4 per candidate op at K=4), and a batch and epoch count that give at least
    ``MIN_ARCH_STEPS`` arch steps (the warm-up keeps the paper's 30 % of the epochs, at most 100 epochs).
    Settings the user gave (``explicit``) are kept. Returns the config and a line saying what was chosen."""
    changes: dict[str, Any] = {}
    if "init_channels" not in explicit and cfg.init_channels // cfg.k < MIN_OP_CHANNELS:
        changes["init_channels"] = MIN_OP_CHANNELS * cfg.k
    n_w = max(1, int(n_images * cfg.train_portion))
    batch = cfg.batch_size if "batch_size" in explicit else next(
        (b for b in (32, 16) if -(-n_w // b) * 10 * (1 - PAPER_WARMUP_SHARE) >= MIN_ARCH_STEPS), 8
    )  # fmt: skip
    if batch != cfg.batch_size:
        changes["batch_size"] = batch
        changes["lr"] = cfg.lr * batch / cfg.batch_size if "lr" not in explicit else cfg.lr
    steps = -(-n_w // batch)
    if "epochs" not in explicit:
        arch_epochs = -(-MIN_ARCH_STEPS // steps)
        epochs = min(100, max(cfg.epochs, round(arch_epochs / (1 - PAPER_WARMUP_SHARE))))
        warmup = cfg.warmup_epochs if "warmup_epochs" in explicit else round(epochs * PAPER_WARMUP_SHARE)
        changes.update(epochs=epochs, warmup_epochs=min(warmup, epochs - 1))
    fitted = replace(cfg, **changes)
    arch_steps = steps * (fitted.epochs - fitted.warmup_epochs)
    line = (
        f"folder search for {n_images:,} images: C={fitted.init_channels}, batch {fitted.batch_size}, "
        f"{fitted.epochs} epochs ({fitted.warmup_epochs} warm-up), so {arch_steps:,} arch steps (set "
        "--init-channels, --batch-size or --epochs to choose)"
    )
    return fitted, line


MAX_FIT_CHANNELS = 512  # --max-macs sizes networks up to this many init channels (the paper's largest: 48)


def fit_to_macs(cfg: TrainConfig, genotype: Genotype) -> TrainConfig:
    """``cfg`` with the largest even ``init_channels`` whose network fits ``cfg.max_macs`` multiply-adds.

    How the paper sizes its ImageNet network to the mobile setting (< 600 M), done here by bisection (the
    count grows with C): each try builds the network and counts one forward pass at the data's input size.
    """
    ds = load_data(cfg)
    shape = (ds.in_channels, *ds.image_size)

    def macs(c: int) -> int:
        args = {**model_args(replace(cfg, init_channels=c), ds), "auxiliary": False}
        return count_macs(build_network(genotype, **args), shape)

    lo, hi = 2, 2
    if macs(lo) > cfg.max_macs:
        raise RunError(
            f"even 2 init channels need {macs(lo) / 1e6:.1f} M multiply-adds, over --max-macs "
            f"{cfg.max_macs / 1e6:.1f} M: fewer --layers or a smaller --image-size"
        )
    # multiply-adds grow about as C^2: refuse before building a network far larger than any that trains here
    if macs(16) * (MAX_FIT_CHANNELS / 16) ** 2 < cfg.max_macs:
        raise RunError(
            f"--max-macs {cfg.max_macs / 1e6:,.0f} M would take more than {MAX_FIT_CHANNELS} init channels for this "
            "network: more --layers, or give --init-channels yourself"
        )
    while hi < MAX_FIT_CHANNELS and macs(hi * 2) <= cfg.max_macs:
        hi *= 2
    lo, hi = hi, min(hi * 2, MAX_FIT_CHANNELS)
    while hi - lo > 2:  # lo fits; hi does not (or is the cap)
        mid = (lo + hi) // 4 * 2
        lo, hi = (mid, hi) if macs(mid) <= cfg.max_macs else (lo, mid)
    if macs(hi) <= cfg.max_macs:
        lo = hi
    log.info(
        "sized to --max-macs %.1f M: %d init channels (%.1f M multiply-adds at %dx%d)",
        cfg.max_macs / 1e6,
        lo,
        macs(lo) / 1e6,
        *ds.image_size,
    )
    return replace(cfg, init_channels=lo)
