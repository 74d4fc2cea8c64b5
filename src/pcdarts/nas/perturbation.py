"""Perturbation-based selection (DARTS-PT, Wang et al. 2021) on a supernet: the masks (which op or edge a
probe removes, which are fixed), the order decisions visit the edges, and the decisions themselves.

Two cells: the DARTS cell (an op for every edge of the normal and the reduction cell, then two inputs per
node) and the NAS-Bench-201 cell (an op for each of its 6 edges, ``none`` among the candidates, and no
topology step: every edge is kept), as the paper's code does in each space.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from ..errors import RunError
from .candidates import OPS
from .derive import node_edge_weights
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


class NB201Projection(Projection):
    """The projection of a NAS-Bench-201 supernet: one cell (alpha over 6 edges), an op on every edge."""

    CELLS = ("normal",)

    def __call__(self, w: torch.Tensor, e: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:  # type: ignore[override]
        return self._cell("normal", w, e)

    def genotype(self, steps: int = 3) -> Any:
        from .nb201 import EDGES, NB201Genotype

        if any(o < 0 for o in self.op["normal"]):
            raise RunError("the selection is not finished: some edges are undecided")
        return NB201Genotype(tuple((self.ops[o], src) for o, (_, src) in zip(self.op["normal"], EDGES)))


def plan_op_rounds(n_edges: int, seed: int) -> list[dict[str, Any]]:
    """The NAS-Bench-201 cell's decisions in order: every edge once, in a seeded random order, an op each."""
    return [{"kind": "op", "normal": e} for e in random.Random(seed).sample(range(n_edges), n_edges)]


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


class Decider:
    """The decisions of DARTS-PT on ``model``, whose mixing weights go through ``projection``: an op for each
    edge, then two inputs for each node, each by the accuracy the supernet keeps on ``batches()`` (labelled
    batches of the arch split) without it."""

    def __init__(
        self,
        model: torch.nn.Module,
        projection: Projection,
        batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
        *,
        none_candidate: bool = False,
    ):
        """``none_candidate``: ``none`` competes for an edge (a NAS-Bench-201 cell can hold it; a DARTS cell
        cannot)."""
        self.model, self.projection, self.batches = model, projection, batches
        self.none_candidate = none_candidate
        self.nodes = model.steps
        # every buffer (BN statistics; index tensors scoring leaves alone), listed once: the model is not moved
        # after this, so the list holds its live tensors
        self.buffers = list(model.buffers())

    @torch.no_grad()
    def score(self, probe: tuple[str, int, int | None] | None) -> float:
        """Validation accuracy of the supernet with ``probe`` removed (BN in train mode; its statistics restored)."""
        model, buffers = self.model, self.buffers
        saved = [b.clone() for b in buffers]
        self.projection.probe = probe
        if not model.training:  # train() walks every module: thousands of calls per score on a supernet
            model.train()
        correct, n = 0, 0
        try:
            for x, y in self.batches():
                correct += int((model(x).argmax(1) == y).sum())
                n += len(y)
        finally:
            self.projection.probe = None
            for b, old in zip(buffers, saved):
                b.copy_(old)
        return correct / max(n, 1)

    def _alpha(self, cell: str) -> list[list[float]]:
        return torch.softmax(getattr(self.model, f"alphas_{cell}").detach().float().cpu(), dim=-1).tolist()

    def edge_strength(self, cell: str) -> list[float]:
        """The magnitude rule's score of each edge: its best non-``none`` op's softmax(alpha) times softmax(beta)."""
        ops = self.model.ops
        alpha = self._alpha(cell)
        beta = getattr(self.model, f"betas_{cell}") if self.model.edge_norm else None
        weights = [1.0] * len(alpha) if beta is None else node_edge_weights(beta.detach().float().cpu(), self.nodes)
        return [max(a for k, a in enumerate(row) if not OPS[ops[k]].zero) * float(w) for row, w in zip(alpha, weights)]

    def decide_op(self, cell: str, edge: int) -> dict[str, Any]:
        """Fix the edge to the op whose removal hurts accuracy most. Tie rule (scores on a few batches tie often):
        among the tied ops, the one with the largest softmax(alpha) on the edge, then the first in the space."""
        base = self.score(None)
        ops = self.model.ops
        candidates = [k for k in range(len(ops)) if self.none_candidate or not OPS[ops[k]].zero]
        scores = {ops[k]: self.score((cell, edge, k)) for k in candidates}
        worst = min(scores.values())
        tied = [name for name in scores if scores[name] == worst]
        alpha = self._alpha(cell)[edge]
        choice = max(tied, key=lambda name: (alpha[ops.index(name)], -ops.index(name)))
        self.projection.op[cell][edge] = ops.index(choice)
        decision = {
            "kind": "op",
            "cell": cell,
            "edge": edge,
            "accuracy": base,
            "removed_accuracy": scores,
            "choice": choice,
        }
        if len(tied) > 1:
            decision["tie"] = {"between": tied, "broken_by": "largest softmax(alpha) on the edge"}
        return decision

    def decide_node(self, cell: str, node: int) -> dict[str, Any]:
        edges = [e for e in node_edges(self.nodes)[node] if not self.projection.removed[cell][e]]
        steps = []
        strength = self.edge_strength(cell)
        while len(edges) > 2:
            scores = {e: self.score((cell, e, None)) for e in edges}
            best = max(scores.values())
            tied = [e for e in edges if scores[e] == best]  # the edges the supernet misses least
            drop = min(tied, key=lambda e: (strength[e], -e))  # tie rule: the weaker edge by the magnitude rule
            self.projection.removed[cell][drop] = True
            edges.remove(drop)
            step: dict[str, Any] = {"removed_accuracy": {str(e): a for e, a in scores.items()}, "dropped": drop}
            if len(tied) > 1:
                step["tie"] = {"between": tied, "broken_by": "smallest softmax(alpha) x softmax(beta)"}
            steps.append(step)
        start = node_edges(self.nodes)[node].start
        return {"kind": "node", "cell": cell, "node": node, "steps": steps, "kept_inputs": [e - start for e in edges]}
