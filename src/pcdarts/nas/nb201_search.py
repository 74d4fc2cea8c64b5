"""PC-DARTS in the NAS-Bench-201 cell: its supernet and its derivation rule.

The supernet is NAS-Bench-201's network with every cell a search cell: each of the six edges is a
partial-channel mixed op over the candidate ops (PC-DARTS Sec. 3.2: C/K channels through the ops, the
rest bypass them, then a channel shuffle; K=1 is plain DARTS), and edge normalisation weights a node's
incoming edges by softmax(beta) over them (Sec. 3.3; node 1 has one edge, so its weight is 1). All cells
share one alpha (6 x ops) and one beta (6), as NAS-Bench-201's own DARTS supernet shares its alpha;
they are registered as ``alphas_normal`` / ``betas_normal`` so runs, plots and reports read them as the
normal cell's (there is no searched reduction cell: the network reduces with fixed residual blocks).
Derivation keeps every edge and takes its best op, ``none`` included (NAS-Bench-201's rule); the
P-DARTS cap (``max_param_free``) re-derives while too many edges hold parameter-free ops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..choices import check_choice
from ..errors import ConfigError
from .candidates import OpSpace, is_parameter_free, op_space
from .fanout import FanOut, can_fan_out
from .nb201 import CELL, EDGES, NB201_OPS, NB201Genotype, ResidualReduction, check_layers, node_edges
from .supernet import PartialEdge, _accumulate, node_sums, recomputed


def nb201_edge_weights(betas: torch.Tensor) -> torch.Tensor:
    """Edge normalisation in this cell: softmax of beta over the edges entering each node (1, 2, 3 edges)."""
    if betas.shape[-1] != len(EDGES):
        raise ValueError(f"betas has {betas.shape[-1]} entries, the {CELL} cell has {len(EDGES)} edges")
    return torch.cat([torch.softmax(betas[e.start : e.stop], dim=-1) for e in node_edges()], dim=-1)


class NB201SearchCell(nn.Module):
    """Six partial-channel edges; node i sums its edges' op parts and bypass parts, then joins them once.

    As in the DARTS cell (``fanout``), the edges that leave one state (3 from the input, 2 and 1 from the first
    two nodes) run together where they can: one dense conv per conv op with the edges' kernels stacked as its
    output channels, one BN over them, the pool and the skip once. Equal to the cell run edge by edge up to
    float rounding (tested in float64)."""

    def __init__(self, c: int, k: int, mode: str, ops: Sequence[str]):
        super().__init__()
        self.edges = nn.ModuleList(PartialEdge(c, 1, k, mode, ops) for _ in EDGES)
        self.recompute = "none"
        # the edges leaving state j (the input, then nodes 1 and 2), in edge order, for the fanned-out forward
        self.fan_edges = [[e for e, (_, src) in enumerate(EDGES) if src == j] for j in range(len(node_edges()))]
        self.fans = nn.ModuleList(FanOut([self.edges[e] for e in idx]) for idx in self.fan_edges)
        for j, idx in enumerate(self.fan_edges):  # on the module's device: indexing needs no host-to-device copy
            self.register_buffer(f"fan_index{j}", torch.tensor(idx, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, edge_w: torch.Tensor | None) -> torch.Tensor:
        fan = self._fans_out(x)  # decided once: a recomputing pass (BN momentum frozen to 0) takes the same path
        if self.recompute == "cells" and self.training and torch.is_grad_enabled():
            return recomputed(self, self._forward, x, weights, edge_w, fan)
        return self._forward(x, weights, edge_w, fan)

    def _fans_out(self, h: torch.Tensor) -> bool:
        """Whether the edges of each state can run together (``fanout.can_fan_out``); else edge by edge."""
        return can_fan_out(self, h)

    def _forward(
        self, x: torch.Tensor, weights: torch.Tensor, edge_w: torch.Tensor | None, fan: bool = False
    ) -> torch.Tensor:
        if fan:
            return self._fanned(x, weights, edge_w)
        states = [x]
        per_edge = self.recompute == "edges" and self.training and torch.is_grad_enabled()
        for edges in node_edges():
            op_sum = bypass_sum = None
            for e in edges:
                h = states[EDGES[e][1]]
                # edge normalisation folded into the op weights: beta_e * sum_k w_ek op_k = sum_k (beta_e w_ek) op_k
                w = weights[e] if edge_w is None else edge_w[e] * weights[e]
                y, bypass = self.edges[e].parts(h, w, recompute=per_edge)
                op_sum = y if op_sum is None else op_sum + y
                if bypass is not None:
                    if edge_w is None:
                        bypass_sum = bypass if bypass_sum is None else bypass_sum + bypass
                    else:
                        bypass_sum = _accumulate(bypass_sum, edge_w[e], bypass)
            states.append(self.edges[edges.start].join(op_sum, bypass_sum))
        return states[-1]

    def _fanned(self, x: torch.Tensor, weights: torch.Tensor, edge_w: torch.Tensor | None) -> torch.Tensor:
        """The cell with each state's outgoing edges computed together, as soon as the state exists."""
        nodes = node_edges()
        op_terms: list[list[torch.Tensor]] = [[] for _ in nodes]
        bypass_terms: list[list[tuple[torch.Tensor, torch.Tensor | None]]] = [[] for _ in nodes]
        per_group = self.recompute == "edges" and self.training and torch.is_grad_enabled()
        first = self.edges[0]
        states = [x]

        def feed(j: int) -> None:
            idx, index, h = self.fan_edges[j], getattr(self, f"fan_index{j}"), states[j]
            x_op, bypass = (h, None) if first.k == 1 else h.split([first.c_part, h.shape[1] - first.c_part], dim=1)
            w = weights.index_select(0, index)
            w = w if edge_w is None else edge_w.index_select(0, index).unsqueeze(1) * w
            fan = self.fans[j]
            ys = (recomputed(fan.targets, fan, x_op, w) if per_group else fan(x_op, w)).unbind(1)
            for t, e in enumerate(idx):
                node = EDGES[e][0] - 1
                op_terms[node].append(ys[t])
                if bypass is not None:
                    bypass_terms[node].append((bypass, None if edge_w is None else edge_w[e]))

        feed(0)
        for i, edges in enumerate(nodes):
            states.append(self.edges[edges.start].join(*node_sums(op_terms[i], bypass_terms[i])))
            if i + 1 < len(self.fan_edges):
                feed(i + 1)
        return states[-1]


class NB201SearchNetwork(nn.Module):
    """The NAS-Bench-201 supernet: stem, 3 stages of N search cells with residual blocks between, classifier."""

    cell = CELL
    _ARCH = ("alphas_normal", "betas_normal")

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int = 3,
        init_channels: int = 16,
        layers: int = 15,
        k: int = 4,
        edge_norm: bool = True,
        partial_mode: str = "shuffle",
        recompute: str = "none",
        space: str | OpSpace = "nb201",
        ops: Sequence[str] | None = None,
    ):
        super().__init__()
        n = check_layers(layers)
        self.space = space if isinstance(space, OpSpace) else op_space(space, ops)
        op_space(ops=self.space.ops)  # the same checks as a named space or an op list
        self.ops = self.space.ops
        if init_channels % k:
            raise ConfigError(f"init channels {init_channels} must be divisible by K={k}")
        self.num_classes, self.k, self.edge_norm = num_classes, k, edge_norm
        self.steps = len(node_edges())
        c = init_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.cells = nn.ModuleList()
        c_prev = c
        for stage in range(3):
            c_stage = c * 2**stage
            if stage:
                self.cells.append(ResidualReduction(c_prev, c_stage))
            for _ in range(n):
                self.cells.append(NB201SearchCell(c_stage, k, partial_mode, self.ops))
            c_prev = c_stage
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)
        self.recompute = recompute
        # alpha/beta: registered so they live in state_dict, move with .to(), and work with DDP.
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(self.ops)))
        self.betas_normal = nn.Parameter(1e-3 * torch.randn(len(EDGES)))
        # (w, edge_w) -> the same, applied to the mixing weights every forward (one-shot evaluation of a cell)
        self.arch_transform: Callable[..., tuple[torch.Tensor, torch.Tensor | None]] | None = None

    @property
    def recompute(self) -> str:
        """Activation checkpointing (``none``, ``edges`` or ``cells``): same values and gradients, fewer bytes."""
        return self._recompute

    @recompute.setter
    def recompute(self, mode: str) -> None:
        check_choice("recompute", mode)
        self._recompute = mode
        for cell in self.cells:
            if isinstance(cell, NB201SearchCell):
                cell.recompute = mode

    def arch_parameters(self) -> list[nn.Parameter]:
        """alpha (and beta when edge normalisation is on): what the architect updates."""
        return [self.alphas_normal, self.betas_normal] if self.edge_norm else [self.alphas_normal]

    def alpha_parameters(self) -> list[nn.Parameter]:
        return [self.alphas_normal]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n not in self._ARCH]

    def edge_weights(self) -> torch.Tensor | None:
        return nb201_edge_weights(self.betas_normal) if self.edge_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.alphas_normal, dim=-1)  # (6, n_ops)
        edge_w = self.edge_weights()
        if self.arch_transform is not None:
            w, edge_w = self.arch_transform(w, edge_w)
        s = self.stem(x)
        for cell in self.cells:
            s = cell(s, w, edge_w) if isinstance(cell, NB201SearchCell) else cell(s)
        return self.classifier(self.global_pooling(self.lastact(s)).flatten(1))

    def genotype(self, *, max_param_free: int | None = None, max_param_free_reduce: int | None = None) -> NB201Genotype:
        """The current cell: the best op on every edge, ``none`` included (optionally the P-DARTS cap)."""
        if max_param_free_reduce is not None and max_param_free_reduce >= 0:
            raise ConfigError(f"the {CELL} cell has no reduction cell to cap: drop --max-param-free-reduce")
        return derive_nb201(self.alphas_normal, max_param_free=max_param_free, ops=self.ops)

    def arch_state(self) -> dict[str, Any]:
        """alpha (and beta when edge normalisation is on) as plain lists, with the cell and op space."""
        state: dict[str, Any] = {"cell": CELL, "alphas_normal": self.alphas_normal.detach().cpu().tolist()}
        if self.edge_norm:
            state["betas_normal"] = self.betas_normal.detach().cpu().tolist()
        state.update(self.space.to_dict())
        return state


def derive_nb201(alphas: Any, *, max_param_free: int | None = None, ops: Sequence[str] = NB201_OPS) -> NB201Genotype:
    """The argmax op of softmax(alpha) on every edge, ``none`` included (first op on ties).

    Beta does not enter: every edge is kept, and an edge's beta scales all its ops alike. With
    ``max_param_free`` (P-DARTS) the weakest parameter-free pick is struck from its edge while the cell
    holds more than that many, so the edge falls back to its next-best op.
    """
    ops = tuple(ops)
    if max_param_free is not None and not -1 <= max_param_free <= len(EDGES):
        raise ConfigError(
            f"max param-free ops must be -1 or None (off) or between 0 and {len(EDGES)} (the {CELL} cell's "
            f"{len(EDGES)} edges), got {max_param_free}"
        )
    a = torch.as_tensor(alphas, dtype=torch.float32).detach().cpu()
    if a.dim() != 2 or tuple(a.shape) != (len(EDGES), len(ops)):
        raise ValueError(f"alphas of shape {tuple(a.shape)} do not fit the {CELL} cell ({len(EDGES)}, {len(ops)})")
    if not torch.isfinite(a).all():
        raise ValueError("alphas hold NaN or infinite values: the search diverged")
    w = torch.softmax(a, dim=-1).tolist()
    banned: set[tuple[int, int]] = set()
    while True:
        picks = []
        for e, row in enumerate(w):
            ks = [k for k in range(len(ops)) if (e, k) not in banned]
            k = max(ks, key=lambda k: (row[k], -k))
            picks.append((e, k, row[k]))
        free = [p for p in picks if is_parameter_free(ops[p[1]])]
        cap = max_param_free
        if cap is None or cap < 0 or len(free) <= cap:
            break
        strikable = [p for p in free if any(j != p[1] and (p[0], j) not in banned for j in range(len(ops)))]
        if not strikable:
            break
        e, k, _ = min(strikable, key=lambda p: p[2])
        banned.add((e, k))
    return NB201Genotype(tuple((ops[k], EDGES[e][1]) for e, k, _ in picks))


def derive_nb201_arch(arch: dict[str, Any], *, max_param_free: int | None = None) -> NB201Genotype:
    """The genotype of a stored arch state of this cell (``arch.json`` or an ``arch_history.jsonl`` line)."""
    from .candidates import space_of

    ops = space_of(arch).ops if "ops" in arch else NB201_OPS  # the cell's own five ops unless others are stored
    return derive_nb201(arch["alphas_normal"], max_param_free=max_param_free, ops=ops)


def is_nb201_arch(arch: Any) -> bool:
    return isinstance(arch, dict) and arch.get("cell") == CELL
