"""From alpha/beta to a discrete cell: edge normalisation's weights and the PC-DARTS derivation rule.

Each node keeps its two strongest incoming edges, scored by the best non-``none`` op's
softmax(alpha) times the edge's softmax(beta) over the node; each kept edge takes that op. The P-DARTS
cap (``max_param_free``) re-derives while the normal cell holds too many parameter-free ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError
from .candidates import OPS, PRIMITIVES, is_parameter_free, space_of
from .genotype import Genotype, GenotypeError, Pair
from .space import node_edges, num_edges


def node_edge_weights(betas: torch.Tensor, steps: int) -> torch.Tensor:
    """Edge normalisation (PC-DARTS Sec. 3.3): softmax of beta over the edges entering each node.

    ``betas`` has one entry per edge (2 + 3 + ... edges, node by node); the
    result has the same shape and sums to 1 over each node's edges.
    """
    if num_edges(steps) != betas.shape[-1]:
        raise ValueError(f"betas has {betas.shape[-1]} entries, {steps} nodes need {num_edges(steps)}")
    return torch.cat([torch.softmax(betas[e.start : e.stop], dim=-1) for e in node_edges(steps)], dim=-1)


def _pick_cell(
    w: list[list[float]], steps: int, banned: set[tuple[int, int]], ops: Sequence[str]
) -> list[tuple[int, int, float]]:
    """(edge, op, score) of the kept edges: two best edges per node, best allowed non-``none`` op on each."""
    choices = [k for k, name in enumerate(ops) if not OPS[name].zero]
    best: dict[int, tuple[int, float]] = {}  # edge -> (op, weight); the first op wins ties
    for e, row in enumerate(w):
        ks = [k for k in choices if (e, k) not in banned]
        k = max(ks, key=lambda k: (row[k], -k))
        best[e] = (k, row[k])
    picks: list[tuple[int, int, float]] = []
    for edges in node_edges(steps):
        for e in sorted(edges, key=lambda e: -best[e][1])[:2]:
            picks.append((e, *best[e]))
    return picks


def _derive_cell(
    alphas: torch.Tensor,
    betas: torch.Tensor | None,
    steps: int,
    max_param_free: int | None = None,
    ops: Sequence[str] = PRIMITIVES,
) -> list[Pair]:
    """The PC-DARTS rule; with ``max_param_free`` the P-DARTS cap (Chen et al. 2019, Sec. 3.4).

    While the cell holds more parameter-free ops than the cap, the weakest of them (lowest
    weight) is struck from its edge and the cell is derived again, so that edge falls back to its
    next-best op or the node to its next-best edge. An edge keeps its last op: where the space has too few
    ops with parameters to meet the cap, the cell keeps as few parameter-free ops as it can.
    """
    weights = torch.softmax(alphas.detach().float().cpu(), dim=-1)  # (E, n_ops)
    if betas is not None:
        weights = weights * node_edge_weights(betas.detach().float().cpu(), steps)[:, None]
    w = weights.tolist()
    first_edge = {e: edges.start for edges in node_edges(steps) for e in edges}  # edge -> its node's first edge
    banned: set[tuple[int, int]] = set()
    while True:
        picks = _pick_cell(w, steps, banned, ops)
        free = [p for p in picks if is_parameter_free(ops[p[1]])]
        if max_param_free is None or max_param_free < 0 or len(free) <= max_param_free:
            return [(ops[k], e - first_edge[e]) for e, k, _ in picks]
        # strike the weakest parameter-free pick whose edge has another op left; in a space of parameter-free
        # ops only (say --ops none,skip_connect,max_pool_3x3) the cap cannot be met: keep what is there
        choices = [j for j, name in enumerate(ops) if not OPS[name].zero]
        strikable = [p for p in free if any(j != p[1] and (p[0], j) not in banned for j in choices)]
        if not strikable:
            return [(ops[k], e - first_edge[e]) for e, k, _ in picks]
        e, k, _ = min(strikable, key=lambda p: p[2])
        banned.add((e, k))


def derive_genotype(
    alphas_normal: torch.Tensor,
    alphas_reduce: torch.Tensor,
    betas_normal: torch.Tensor | None = None,
    betas_reduce: torch.Tensor | None = None,
    *,
    max_param_free: int | None = None,
    max_param_free_reduce: int | None = None,
    ops: Sequence[str] = PRIMITIVES,
) -> Genotype:
    """Discretise raw (pre-softmax) alpha/beta as PC-DARTS does.

    Edge score = max over non-``none`` ops of softmax(alpha) * softmax_node(beta);
    each node keeps its two best edges (stable on ties) with their best op.
    ``betas_*`` None means no edge normalisation. ``max_param_free`` caps the
    parameter-free ops of the normal cell (P-DARTS), ``max_param_free_reduce`` those of the reduction
    cell (its own value: a reduction cell of pools is a different failure); None or -1: no cap.
    ``ops`` names alpha's columns (the search's op space; the DARTS ops by default).
    """
    ops = tuple(ops)
    for name, cap in (("max_param_free", max_param_free), ("max_param_free_reduce", max_param_free_reduce)):
        if cap is not None and not -1 <= cap <= 8:
            raise ConfigError(f"{name} must be -1 or None (off) or between 0 and 8, got {cap}")
    if any(o not in OPS for o in ops) or all(OPS[o].zero for o in ops):
        raise ValueError(f"ops {list(ops)} must be registered op names, at least one of them not 'none'")
    alphas_normal, alphas_reduce = torch.as_tensor(alphas_normal), torch.as_tensor(alphas_reduce)
    betas_normal = None if betas_normal is None else torch.as_tensor(betas_normal)
    betas_reduce = None if betas_reduce is None else torch.as_tensor(betas_reduce)
    if alphas_normal.dim() != 2:
        raise ValueError(f"alphas_normal must be (edges, ops), got shape {tuple(alphas_normal.shape)}")
    n_edges = alphas_normal.shape[0]
    steps = next(s for s in range(n_edges + 1) if num_edges(s) >= n_edges)  # a misfit is reported below
    shape = (num_edges(steps), len(ops))
    for name, a in (("alphas_normal", alphas_normal), ("alphas_reduce", alphas_reduce)):
        if tuple(a.shape) != shape:
            raise ValueError(
                f"{name} of shape {tuple(a.shape)} does not fit the cell space {shape} "
                f"({len(ops)} ops: {', '.join(ops)})"
            )
        if not torch.isfinite(a).all():
            raise ValueError(f"{name} holds NaN or infinite values: the search diverged")
    for name, b in (("betas_normal", betas_normal), ("betas_reduce", betas_reduce)):
        if b is not None and tuple(b.shape) != shape[:1]:
            raise ValueError(f"{name} of shape {tuple(b.shape)} does not fit {shape[0]} edges")
    concat = tuple(range(2, 2 + steps))
    return Genotype(
        tuple(_derive_cell(alphas_normal, betas_normal, steps, max_param_free, ops)),
        concat,
        tuple(_derive_cell(alphas_reduce, betas_reduce, steps, max_param_free_reduce, ops)),
        concat,
    )


def derive_from_arch(
    arch: dict[str, Any], *, max_param_free: int | None = None, max_param_free_reduce: int | None = None
) -> Any:
    """The genotype of a saved arch state (``arch.json`` or an ``arch_history.jsonl`` line).

    Its columns are the ops stored with it; a state written before op spaces were stored is the DARTS space.
    """
    if not isinstance(arch, dict):
        raise GenotypeError("not an arch state: expected a JSON object with alphas_normal/alphas_reduce lists")
    if arch.get("cell", "darts") != "darts":  # a NAS-Bench-201 cell search: one alpha, every edge kept
        from .nb201_search import derive_nb201_arch

        if max_param_free_reduce is not None and max_param_free_reduce >= 0:
            raise GenotypeError("the nasbench201 cell has no reduction cell to cap: drop --max-param-free-reduce")
        try:
            return derive_nb201_arch(arch, max_param_free=max_param_free)
        except ConfigError as exc:
            raise GenotypeError(str(exc)) from None
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise GenotypeError(f"not a nasbench201 arch state with an alphas_normal list ({exc})") from None
    try:
        space = space_of(arch)
    except ConfigError as exc:
        raise GenotypeError(str(exc)) from None
    try:
        return derive_genotype(
            arch["alphas_normal"],
            arch["alphas_reduce"],
            arch.get("betas_normal"),
            arch.get("betas_reduce"),
            max_param_free=max_param_free,
            max_param_free_reduce=max_param_free_reduce,
            ops=space.ops,
        )
    except ConfigError:  # a setting out of range, not a damaged file
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise GenotypeError(f"not an arch state with alphas_normal/alphas_reduce lists ({exc})") from None
