"""Perturbation-based selection's masks (DARTS-PT, Wang et al. 2021): which op or edge a probe
removes, which are fixed, and the order decisions visit the edges.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import RunError
from .genotype import Genotype
from .space import node_edges, num_edges


class Projection:
    """Which ops and edges are decided, applied to the supernet's mixing weights (its ``arch_transform``)."""

    CELLS = ("normal", "reduce")

    def __init__(self, n_edges: int, ops: Sequence[str]):
        self.n_edges, self.ops, self.n_ops = n_edges, tuple(ops), len(ops)
        self.op = {c: [-1] * n_edges for c in self.CELLS}  # the chosen op of each decided edge
        self.removed = {c: [False] * n_edges for c in self.CELLS}
        self.probe: tuple[str, int, int | None] | None = None  # (cell, edge, op or None = the whole edge)

    def state_dict(self) -> dict[str, Any]:
        return {
            "op": {c: list(v) for c, v in self.op.items()},
            "removed": {c: list(v) for c, v in self.removed.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.op = {c: [int(v) for v in state["op"][c]] for c in self.CELLS}
        self.removed = {c: [bool(v) for v in state["removed"][c]] for c in self.CELLS}

    def _cell(self, cell: str, w: torch.Tensor, e: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        ops, removed, probe = self.op[cell], self.removed[cell], self.probe
        probe = probe if probe is not None and probe[0] == cell else None
        if all(o < 0 for o in ops) and not any(removed) and probe is None:
            return w, e
        fixed = torch.zeros_like(w)
        decided = torch.zeros(self.n_edges, 1, dtype=torch.bool, device=w.device)
        for i, o in enumerate(ops):
            if o >= 0:
                fixed[i, o], decided[i] = 1.0, True
        w = torch.where(decided, fixed, w)
        keep = torch.tensor([0.0 if r else 1.0 for r in removed], dtype=w.dtype, device=w.device)
        if probe is not None:
            _, edge, op = probe
            if op is None:
                keep[edge] = 0.0
            else:
                mask = torch.ones_like(w)
                mask[edge, op] = 0.0
                w = w * mask
        if bool((keep == 0).any()):
            e = keep if e is None else e * keep
        return w, e

    def __call__(
        self,
        w_normal: torch.Tensor,
        w_reduce: torch.Tensor,
        e_normal: torch.Tensor | None,
        e_reduce: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        w_normal, e_normal = self._cell("normal", w_normal, e_normal)
        w_reduce, e_reduce = self._cell("reduce", w_reduce, e_reduce)
        return w_normal, w_reduce, e_normal, e_reduce

    def genotype(self, steps: int) -> Genotype:
        cells = []
        for c in self.CELLS:
            pairs = []
            for node in node_edges(steps):
                kept = [e for e in node if not self.removed[c][e]]
                if len(kept) != 2 or any(self.op[c][e] < 0 for e in kept):
                    raise RunError("the selection is not finished: some edges or nodes are undecided")
                pairs += [(self.ops[self.op[c][e]], e - node.start) for e in kept]
            cells.append(tuple(pairs))
        concat = tuple(range(2, 2 + steps))
        return Genotype(cells[0], concat, cells[1], concat)


def plan_rounds(steps: int, seed: int) -> list[dict[str, Any]]:
    """The decisions in order: one edge per cell per round (every edge), then one node per cell per round."""
    rng = random.Random(seed)
    n = num_edges(steps)
    edges = {c: rng.sample(range(n), n) for c in Projection.CELLS}
    multi = [i for i, node in enumerate(node_edges(steps)) if len(node) > 2]
    nodes = {c: rng.sample(multi, len(multi)) for c in Projection.CELLS}
    rounds = [{"kind": "op", "normal": edges["normal"][i], "reduce": edges["reduce"][i]} for i in range(n)]
    rounds += [{"kind": "node", "normal": nodes["normal"][i], "reduce": nodes["reduce"][i]} for i in range(len(multi))]
    return rounds
