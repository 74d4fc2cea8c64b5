"""One-shot scores: a finished supernet's accuracy for given cells, with the weights it learned in the search.

Does the supernet rank cells the way training them from scratch does? (Yu et al., ICLR 2020, "Evaluating
the search phase of NAS"; NAS-Bench-201 reports the same Kendall tau for its one-shot methods.) For each
cell, alpha is replaced by a one-hot choice of the cell's op on every edge (beta, where the search learned
one, stays as learned: the supernet was trained with it) and the supernet classifies a fixed per-class
sample of the hold-out, BN in training mode (batch statistics: the supernet's running statistics belong to
the mixture, not to any one cell), without gradients. Only the NAS-Bench-201 cell is supported: its cells
are one op per edge, which maps onto the supernet's edges one to one.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, RunError
from ..files import atomic_write_json, read_run_json

log = logging.getLogger(__name__)

BATCH = 250


def one_hot_transform(genotype: Any, ops: tuple[str, ...]) -> Any:
    """``arch_transform`` for an ``NB201SearchNetwork``: softmax(alpha) replaced by the cell's one-hot ops."""
    index = [ops.index(op) for op in genotype.ops]
    hot = torch.zeros(len(index), len(ops))
    hot[torch.arange(len(index)), torch.tensor(index)] = 1.0

    def transform(w: torch.Tensor, edge_w: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return hot.to(w.device, w.dtype), edge_w

    return transform


def oneshot_scores(
    run: str | Path, scfg: Any, genotypes: list[Any], *, images: int = 2000, progress: bool = False
) -> dict[str, Any]:
    """Score ``genotypes`` with the supernet of the finished search in ``run``; written to ``run/oneshot.json``.

    A finished ``oneshot.json`` for the same cells and images is read back instead of computed again.
    """
    from ..data import make_stream, selection_part, stratified_split
    from ..runs.inputs import load_data
    from ..runs.search import load_finished_supernet

    run = Path(run)
    if getattr(scfg, "cell", "darts") != "nasbench201":
        raise ConfigError("one-shot scores need a nasbench201 cell search (one op per edge)")
    wanted = [g.to_text() for g in genotypes]
    out = run / "oneshot.json"
    if out.is_file():
        saved = read_run_json(out)
        if saved.get("cells") == wanted and saved.get("images") == images:
            return saved
    ds = load_data(scfg)
    held = selection_part(ds)
    if held is None:
        raise RunError("one-shot scores read the hold-out: search with --holdout-images")
    if images < len(held[1]):
        _, held = stratified_split(held, images, what="one-shot sample")
    net, _ = load_finished_supernet(run, scfg, ds)
    net.train()
    stream = make_stream(ds, held, BATCH, train=False)
    t0 = time.time()
    scores = []
    with torch.no_grad():
        for i, g in enumerate(genotypes):
            net.arch_transform = one_hot_transform(g, net.ops)
            correct = total = 0
            stream.reset()
            for x, y in stream.epoch():
                correct += int((net(x).argmax(1) == y).sum())
                total += len(y)
            scores.append(correct / total)
            if progress and (i + 1) % 10 == 0:
                log.info("one-shot scores: %d of %d cells", i + 1, len(genotypes))
    net.arch_transform = None
    seconds = time.time() - t0
    result = {"cells": wanted, "images": images, "scores": scores, "seconds": seconds, "bn": "batch statistics"}
    atomic_write_json(out, result)
    return result
