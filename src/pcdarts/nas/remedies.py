"""Remedies for the drift of DARTS-family searches to parameter-free ops. All off by default.

- P-DARTS (Chen et al., ICCV 2019, Sec. 3.4): cap the parameter-free ops of the derived normal
  cell; implemented in the derivation (``derive_genotype(max_param_free=...)``). The reduction
  cell has a cap of its own (``max_param_free_reduce``): P-DARTS caps the normal cell only, but on
  small data a reduction cell of 8 pools was seen (Study I, docs/STUDY.md).
- DARTS+ (Liang et al., 2019, Sec. 3.3): early stopping. Criterion 1 ends the search once the
  derived normal cell holds a given number of parameter-free ops (the paper: two skip-connects);
  criterion 2 once the derived genotype has not changed for a given number of arch epochs
  (the paper: the ranking of alpha stable for 10 epochs).
- beta-DARTS (Ye et al., CVPR 2022): the Beta-Decay term, per cell the mean over edges of
  logsumexp over ops of the raw alpha, summed over the normal and reduction cells, added to the
  first-order arch loss (``architect.beta_decay_loss``) with a weight rising linearly with the epoch.
- The P-DARTS code caps skip-connects only; the cap here counts every parameter-free op (skip
  and both pools), because the drift seen on small data goes to pooling as much as to skips.

These are pure functions of the configuration and the per-epoch history, so a resumed search
decides exactly as an uninterrupted one, and a study can re-derive a stored search.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .derive import derive_from_arch
from .genotype import Genotype, param_free_count


def beta_decay_weight(epoch: int, *, epochs: int, weight: float) -> float:
    """Beta-Decay weight for ``epoch``: ``weight * epoch / epochs``, rising linearly from 0.

    The beta-DARTS code uses ``50 * epoch / 100`` (100 epochs on NAS-Bench-201): ``weight`` = 50 there.
    """
    return weight * epoch / epochs if weight > 0 else 0.0


def early_stop_reason(genotypes: Sequence[Genotype], *, param_free: int = 0, stable: int = 0) -> str | None:
    """Why DARTS+ would end the search after the last of ``genotypes`` (the arch epochs so far), or None.

    ``param_free``: criterion 1, the normal cell holds at least this many parameter-free ops (0: off).
    ``stable``: criterion 2, the genotype is the same in the last ``stable`` + 1 arch epochs (0: off).
    """
    if not genotypes:
        return None
    last = genotypes[-1]
    if param_free and param_free_count(last.normal) >= param_free:
        return f"normal cell has {param_free_count(last.normal)} parameter-free ops (>= {param_free})"
    if stable and len(genotypes) > stable and all(g == last for g in genotypes[-stable - 1 :]):
        return f"genotype unchanged for {stable} arch epochs"
    return None


def select_from_history(
    history: Sequence[dict[str, Any]],
    *,
    warmup_epochs: int,
    max_param_free: int = -1,
    max_param_free_reduce: int = -1,
    early_stop_param_free: int = 0,
    early_stop_stable: int = 0,
) -> tuple[Genotype, int, str | None]:
    """Replay a search's arch history under the remedies: (genotype, epoch it comes from, stop reason).

    A search ended by DARTS+ at epoch e gives exactly the genotype of epoch e of the same search
    run without early stopping, so a study derives the early-stopped arm from the stored history.
    """
    if not history:
        raise ValueError("the arch history is empty")
    cap = max_param_free if max_param_free >= 0 else None
    cap_r = max_param_free_reduce if max_param_free_reduce >= 0 else None
    arch_epochs: list[Genotype] = []
    for entry in history:
        genotype = derive_from_arch(entry, max_param_free=cap, max_param_free_reduce=cap_r)
        if int(entry["epoch"]) <= warmup_epochs:  # epochs count from 1: 1..warmup_epochs are the warm-up
            continue
        arch_epochs.append(derive_from_arch(entry))  # criteria look at the uncapped derivation
        reason = early_stop_reason(arch_epochs, param_free=early_stop_param_free, stable=early_stop_stable)
        if reason:
            return genotype, int(entry["epoch"]), reason
    last = derive_from_arch(history[-1], max_param_free=cap, max_param_free_reduce=cap_r)
    return last, int(history[-1]["epoch"]), None
