"""What a search will cost before it starts: memory per K and the whole search's time from measured steps.

No data is read: the shapes of a dataset are known (``data.SHAPES``), and the steps are timed on random tensors of
those shapes with the supernet, optimisers and step function a search uses, on the device that will run it.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import torch

from ..data import SHAPES
from ..errors import ConfigError
from ..nas.architect import Architect
from .config import SearchConfig
from .engine import search_step, sgd_impl


def search_shape(cfg: SearchConfig) -> tuple[int, int, int, int]:
    """(input channels, side, classes, train images the search splits) of ``cfg``, without reading the data."""
    shape = SHAPES.get(cfg.dataset)
    if shape is None or shape.train_images is None:
        known = ", ".join(k for k, v in SHAPES.items() if v.train_images)
        raise ConfigError(
            f"no known shape for dataset {cfg.dataset!r}: plan knows {known} (an image folder: count it "
            "with pcdarts search --print-config)"
        )
    cin, side, classes, n = shape.channels, shape.side, shape.classes, shape.train_images
    if cfg.image_size:
        side = cfg.image_size
    if cfg.train_images:
        n = min(n, cfg.train_images)
    if cfg.dataset == "imagenet" and cfg.subset is None:
        n = round(0.125 * n)  # the paper's subsets: 10 % for the weights and 2.5 % for alpha/beta
    n -= cfg.holdout_images
    return cin, side, classes, max(n, 1)


def time_steps(cfg: SearchConfig, device: torch.device, *, repeats: int = 2) -> dict[str, float]:
    """Median seconds of a warm-up step (weights only) and of a search step (arch then weights) at ``cfg``'s
    batch, after one untimed step of each (allocation, kernel selection)."""
    from .config import build_search_network

    cin, side, classes, _ = search_shape(cfg)
    torch.manual_seed(0)
    net = build_search_network(cfg, num_classes=classes, in_channels=cin).to(device)
    weights = net.weight_parameters()
    w_opt = torch.optim.SGD(
        weights, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **sgd_impl(device)
    )
    arch = Architect(net, lr=cfg.arch_lr, unrolled=cfg.unrolled)
    x = torch.randn(cfg.batch_size, cin, side, side, device=device)
    y = torch.randint(0, classes, (cfg.batch_size,), device=device)

    def timed(val: Any) -> float:
        out = []
        for _ in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            search_step(net, net, arch, w_opt, x, y, val, grad_clip=cfg.grad_clip, eta=cfg.lr, weights=weights)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            out.append(time.perf_counter() - t0)
        return statistics.median(out[1:])

    return {"warmup_step_s": timed(None), "search_step_s": timed((x, y))}


def search_minutes(cfg: SearchConfig, times: dict[str, float]) -> dict[str, Any]:
    """The whole search at measured step times: warm-up epochs of weight steps, then search steps (an
    evaluation pass per epoch adds about a third of a weight step per arch batch; data loading not counted)."""
    _, _, _, n = search_shape(cfg)
    steps = math.ceil(n * cfg.train_portion / cfg.batch_size)
    arch_epochs = cfg.epochs - cfg.warmup_epochs
    seconds = steps * (cfg.warmup_epochs * times["warmup_step_s"] + arch_epochs * times["search_step_s"])
    seconds += cfg.epochs * math.ceil(n * (1 - cfg.train_portion) / cfg.batch_size) * times["warmup_step_s"] / 3
    return {"steps_per_epoch": steps, "epochs": cfg.epochs, "warmup_epochs": cfg.warmup_epochs,
            "minutes": seconds / 60.0, **times}  # fmt: skip
