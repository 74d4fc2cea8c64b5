"""The PC-DARTS supernet: partial-channel mixed ops, search cells, search network.

PC-DARTS Sec. 3.2 (partial channel connection): on each edge only ``C/K``
channels run through the softmax(alpha)-weighted candidate ops; the rest
bypass them and a channel shuffle mixes the two parts.  Sec. 3.3 (edge
normalisation): a per-edge beta, softmax-normalised over the edges entering
each node, weights the edges.  alpha and beta are registered parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..choices import CHOICES, check_choice
from ..errors import ConfigError
from .candidates import OPS, PRIMITIVES, OpSpace, op_space
from .derive import derive_genotype, node_edge_weights
from .fanout import FanOut, can_fan_out, fan_kind
from .genotype import Genotype
from .kernels import max_pool, scaled_batch_norm
from .ops import FactorizedReduce, FusableOp, PoolBN, ReLUConvBN
from .space import check_layers, node_edges, num_edges, reduction_cells


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: (N, g*c, H, W) -> channels interleaved across groups."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def cat_shuffle(y: torch.Tensor, bypass: torch.Tensor, groups: int) -> torch.Tensor:
    """``channel_shuffle(cat([y, bypass]), groups)`` with one copy instead of two.

    Output channel ``i * groups + g`` is channel ``i`` of group ``g`` (group 0 = ``y``), so stacking the
    groups on a new axis after the channel axis and flattening gives the shuffled tensor directly.
    """
    n, c_part, h, w = y.shape
    rest = bypass.view(n, groups - 1, c_part, h, w).transpose(1, 2)  # (N, C/K, K-1, H, W), a view
    return torch.cat([y.unsqueeze(2), rest], dim=2).view(n, c_part * groups, h, w)


def _accumulate(total: torch.Tensor | None, weight: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``total + weight * y`` in one kernel (``weight * y`` when there is no total yet)."""
    return weight * y if total is None else torch.addcmul(total, weight, y)


class MixedOp(nn.Module):
    """softmax(alpha)-weighted sum of the candidate ops; a ``none`` op adds zeros, so it is skipped.

    What the backward pass keeps is the point of PC-DARTS, so the sum is arranged to keep little: ReLU(x)
    is computed once for every op that starts with one, each ``FusableOp``'s final BN is fused with its
    weight (``scaled_batch_norm``), and max pooling keeps no indices. Any other op runs its own ``forward``.
    Parameters and state-dict keys are those of the plain modules, whose own ``forward`` gives the same sum
    (``pcdarts.bench.reference``). ``ops``: the op names, in alpha-column order (``pcdarts.nas.candidates``).
    """

    def __init__(self, c: int, stride: int, ops: Sequence[str] = PRIMITIVES):
        super().__init__()
        self.stride = stride
        self.names = tuple(ops)
        self.ops = nn.ModuleList()
        self.op_index: list[int] = []  # the alpha column of each module in ``ops``
        self.kinds: list[str | None] = []  # how the fast path computes each (None: edge by edge)
        self.fused: list[bool] = []
        for k, name in enumerate(self.names):
            spec = OPS[name]
            if spec.zero:
                continue
            op = spec.build(c, stride, False)
            if spec.search_bn:
                op = PoolBN(op, c)
            self.ops.append(op)
            self.op_index.append(k)
            self.kinds.append(fan_kind(spec.fan_out, op, stride))
            self.fused.append(isinstance(op, FusableOp))
        self.shares_relu = any(f and op.leading_relu for f, op in zip(self.fused, self.ops))

    def term(self, i: int, x: torch.Tensor, r: torch.Tensor | None, w: torch.Tensor) -> torch.Tensor:
        """``w * ops[i](x)``; ``r`` is ReLU(x) when some op starts with a ReLU (computed once, shared)."""
        op = self.ops[i]
        if not self.fused[i]:
            return w * op(x)
        relu = op.leading_relu
        return scaled_batch_norm(op.pre_bn(r if relu else x, relu_done=relu), w, op.final_bn)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        r = torch.relu(x) if self.shares_relu else x
        out = None
        for i, k in enumerate(self.op_index):
            term = self.term(i, x, r, weights[k])
            out = term if out is None else out + term
        return out


class PartialEdge(nn.Module):
    """One supernet edge with partial channel connection (K=1: plain DARTS)."""

    def __init__(self, c: int, stride: int, k: int, mode: str = "shuffle", ops: Sequence[str] = PRIMITIVES):
        super().__init__()
        if c % k:
            raise ConfigError(f"channels {c} not divisible by K={k}: choose init channels divisible by K")
        check_choice("partial_mode", mode)
        self.k, self.stride, self.mode = k, stride, mode
        self.c_part = c // k
        self.op = MixedOp(self.c_part, stride, ops)

    def parts(
        self, x: torch.Tensor, weights: torch.Tensor, *, recompute: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The op part (C/K channels) and the bypass part (the rest; None at K=1), before ``join``.

        A cell sums each part over a node's edges and joins once per node: the join is a fixed permutation,
        so this equals summing joined edges, and no full-width edge output is kept for the backward pass.
        ``recompute``: the mixed op's activations are recomputed in the backward pass instead of kept.
        """
        x_op, x_bypass = (x, None) if self.k == 1 else x.split([self.c_part, x.shape[1] - self.c_part], dim=1)
        y = recomputed(self.op, self.op, x_op, weights) if recompute else self.op(x_op, weights)
        if x_bypass is None:
            return y, None
        if self.stride == 2:
            x_bypass = max_pool(x_bypass, 2, 2, 0, ceil_mode=True)
        return y, x_bypass

    def join(self, y: torch.Tensor, bypass: torch.Tensor | None) -> torch.Tensor:
        if bypass is None:
            return y
        if self.mode == "shift":
            return torch.cat([bypass, y], dim=1)  # rotate: processed channels move to the end
        return cat_shuffle(y, bypass, self.k)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.join(*self.parts(x, weights))


RECOMPUTE = CHOICES["recompute"]
"""Activation checkpointing: keep everything, recompute the edges leaving each state (each ``FanOut``;
per edge where the cell runs edge by edge), or each whole cell."""


@contextlib.contextmanager
def _bn_frozen(module: nn.Module | Sequence[nn.Module]) -> Iterator[None]:
    """BN running statistics untouched (momentum 0, counters restored): for a recomputed forward pass."""
    mods = module.modules() if isinstance(module, nn.Module) else (s for m in module for s in m.modules())
    saved = [(m, m.momentum, m.num_batches_tracked.clone()) for m in mods if isinstance(m, nn.BatchNorm2d)]
    for m, _, _ in saved:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, count in saved:
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)


def recomputed(module: nn.Module | Sequence[nn.Module], fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` whose activations are recomputed in the backward pass instead of kept.

    The second (recomputing) call must not move BN running statistics a second time, so it runs with
    them frozen; batch statistics, and so every value, are the same as in the first call.
    """
    calls = 0

    def run(*a: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return fn(*a)
        with _bn_frozen(module):
            return fn(*a)

    return checkpoint(run, *args, use_reentrant=False)


def node_sums(
    op_terms: list[torch.Tensor], bypass_terms: list[tuple[torch.Tensor, torch.Tensor | None]]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A node's sums over its edges, in edge order: the op parts, and the bypass parts each with its edge weight
    (None: unweighted). What a fanned cell joins once per node."""
    op_sum = op_terms[0]
    for y in op_terms[1:]:
        op_sum = op_sum + y
    bypass_sum = None
    for b, ew in bypass_terms:
        if ew is None:
            bypass_sum = b if bypass_sum is None else bypass_sum + b
        else:
            bypass_sum = _accumulate(bypass_sum, ew, b)
    return op_sum, bypass_sum


class SearchCell(nn.Module):
    def __init__(
        self,
        steps: int,
        multiplier: int,
        c_pp: int,
        c_p: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
        k: int,
        mode: str,
        ops: Sequence[str] = PRIMITIVES,
    ):
        super().__init__()
        self.reduction, self.steps, self.multiplier = reduction, steps, multiplier
        self.recompute = "none"
        self.preprocess0 = (
            FactorizedReduce(c_pp, c, affine=False) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, False)
        )
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, False)
        self.edges = nn.ModuleList()
        for edges in node_edges(steps):
            for j in range(len(edges)):  # from state j: the two cell inputs first, where a reduction strides
                self.edges.append(PartialEdge(c, 2 if reduction and j < 2 else 1, k, mode, ops))
        # the edges leaving state j (cell inputs 0, 1, then the nodes), for the fanned-out forward
        self.fan_edges = [[e[j] for e in node_edges(steps) if j < len(e)] for j in range(steps + 1)]
        self.fans = nn.ModuleList(FanOut([self.edges[e] for e in idx]) for idx in self.fan_edges)
        for j, idx in enumerate(self.fan_edges):  # on the module's device: indexing needs no host-to-device copy
            self.register_buffer(f"fan_index{j}", torch.tensor(idx, dtype=torch.long), persistent=False)

    def forward(
        self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, edge_w: torch.Tensor | None
    ) -> torch.Tensor:
        fan = self._fans_out(s1)  # decided once: a recomputing pass (BN momentum frozen to 0) takes the same path
        if self.recompute == "cells" and self.training and torch.is_grad_enabled():
            return recomputed(self, self._forward, s0, s1, weights, edge_w, fan)
        return self._forward(s0, s1, weights, edge_w, fan)

    def _forward(
        self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, edge_w: torch.Tensor | None, fan: bool
    ) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        if fan:
            return self._fanned(states, weights, edge_w)
        per_edge = self.recompute == "edges" and self.training and torch.is_grad_enabled()
        for edges in node_edges(self.steps):
            op_sum = bypass_sum = None
            for e, h in zip(edges, states):
                # edge normalisation folded into the op weights: beta_j * sum_k w_jk op_k = sum_k (beta_j w_jk) op_k
                w = weights[e] if edge_w is None else edge_w[e] * weights[e]
                y, bypass = self.edges[e].parts(h, w, recompute=per_edge)
                op_sum = y if op_sum is None else op_sum + y
                if bypass is not None:
                    if edge_w is None:
                        bypass_sum = bypass if bypass_sum is None else bypass_sum + bypass
                    else:
                        bypass_sum = _accumulate(bypass_sum, edge_w[e], bypass)
            states.append(self.edges[edges.start].join(op_sum, bypass_sum))
        return torch.cat(states[-self.multiplier :], dim=1)  # (N, multiplier*C, H', W')

    def _fans_out(self, h: torch.Tensor) -> bool:
        """Whether the edges of each state can run together (``fanout.can_fan_out``); else edge by edge."""
        return can_fan_out(self, h)

    def _fanned(self, states: list[torch.Tensor], weights: torch.Tensor, edge_w: torch.Tensor | None) -> torch.Tensor:
        """The cell with each state's outgoing edges computed together, as soon as the state exists."""
        nodes = node_edges(self.steps)
        op_terms: list[list[torch.Tensor]] = [[] for _ in nodes]
        bypass_terms: list[list[tuple[torch.Tensor, torch.Tensor | None]]] = [[] for _ in nodes]
        per_group = self.recompute == "edges" and self.training and torch.is_grad_enabled()
        first = self.edges[0]

        def feed(j: int) -> None:
            idx = self.fan_edges[j]
            index = getattr(self, f"fan_index{j}")
            h = states[j]
            # one split, not two slices: the backward joins the two gradients instead of zero-filling a full-size
            # tensor for each slice and adding them
            x_op, bypass = (h, None) if first.k == 1 else h.split([first.c_part, h.shape[1] - first.c_part], dim=1)
            w = weights.index_select(0, index)
            w = w if edge_w is None else edge_w.index_select(0, index).unsqueeze(1) * w
            fan = self.fans[j]
            ys = recomputed(fan.targets, fan, x_op, w) if per_group else fan(x_op, w)
            if bypass is not None and self.edges[idx[0]].stride == 2:
                bypass = max_pool(bypass, 2, 2, 0, ceil_mode=True)
            per_edge = ys.unbind(1)  # its backward stacks the edges' gradients (select's would zero-fill each)
            for t, e in enumerate(idx):
                i = max(j - 1, 0) + t  # the node edge e enters: state j feeds nodes j - 1, j, ... (0, 1, ... for j < 2)
                op_terms[i].append(per_edge[t])
                if bypass is not None:
                    bypass_terms[i].append((bypass, None if edge_w is None else edge_w[e]))

        feed(0)
        feed(1)
        for i, edges in enumerate(nodes):
            states.append(self.edges[edges.start].join(*node_sums(op_terms[i], bypass_terms[i])))
            if i + 2 < len(self.fan_edges):
                feed(i + 2)
        return torch.cat(states[-self.multiplier :], dim=1)


class SearchNetwork(nn.Module):
    """The searchable network. ``stem='cifar'`` (3x3 conv) or ``'imagenet'`` (three stride-2 convs)."""

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int = 3,
        init_channels: int = 16,
        layers: int = 8,
        k: int = 4,
        edge_norm: bool = True,
        partial_mode: str = "shuffle",
        steps: int = 4,
        multiplier: int = 4,
        stem_multiplier: int = 3,
        stem: str = "cifar",
        recompute: str = "none",
        space: str | OpSpace = "darts",
        ops: Sequence[str] | None = None,
    ):
        super().__init__()
        check_layers(layers)
        if isinstance(space, OpSpace):
            op_space(ops=space.ops)  # the same checks as a named space or an op list
            self.space = space
        else:
            self.space = op_space(space, ops)
        self.ops = self.space.ops
        if init_channels % k or init_channels % 2:
            raise ConfigError(f"init channels {init_channels} must be even and divisible by K={k}")
        self.num_classes, self.steps, self.multiplier, self.k = num_classes, steps, multiplier, k
        self.edge_norm = edge_norm
        c = init_channels
        if stem == "cifar":
            c_curr = stem_multiplier * c
            self.stem0 = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
            self.stem1 = None
            c_pp, c_p, reduction_prev = c_curr, c_curr, False
        elif stem == "imagenet":  # as the official model_search_imagenet.py: 3 -> 3C/2 -> 3C -> 3C at C=16
            cs = stem_multiplier * c
            self.stem0 = nn.Sequential(
                nn.Conv2d(in_channels, cs // 2, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cs // 2),
                nn.ReLU(inplace=True),
                nn.Conv2d(cs // 2, cs, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cs),
            )
            self.stem1 = nn.Sequential(
                nn.ReLU(), nn.Conv2d(cs, cs, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cs)
            )
            c_pp, c_p, reduction_prev = cs, cs, True
        else:
            check_choice("stem", stem)
        self.cells = nn.ModuleList()
        c_curr = c
        for i in range(layers):
            reduction = i in reduction_cells(layers)
            if reduction:
                c_curr *= 2
            cell = SearchCell(
                steps, multiplier, c_pp, c_p, c_curr, reduction, reduction_prev, k, partial_mode, self.ops
            )
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, multiplier * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        self.recompute = recompute
        e, n_ops = num_edges(steps), len(self.ops)
        # alpha/beta: registered so they live in state_dict, move with .to(), and work with DDP.
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(e, n_ops))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(e, n_ops))
        self.betas_normal = nn.Parameter(1e-3 * torch.randn(e))
        self.betas_reduce = nn.Parameter(1e-3 * torch.randn(e))
        # (w_normal, w_reduce, e_normal, e_reduce) -> the same, applied to the mixing weights every forward:
        # perturbation-based selection (select.py) masks and fixes ops and edges through it. Not state.
        self.arch_transform: Callable[..., tuple[torch.Tensor | None, ...]] | None = None

    @property
    def recompute(self) -> str:
        """Activation checkpointing, one of ``RECOMPUTE``: same values and gradients, fewer bytes kept."""
        return self.cells[0].recompute

    @recompute.setter
    def recompute(self, mode: str) -> None:
        check_choice("recompute", mode)
        for cell in self.cells:
            cell.recompute = mode

    _ARCH = ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce")

    def arch_parameters(self) -> list[nn.Parameter]:
        """alpha (and beta when edge normalisation is on): what the architect updates."""
        return [getattr(self, n) for n in self._ARCH if self.edge_norm or n.startswith("alphas")]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n not in self._ARCH]

    def edge_weights(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if not self.edge_norm:
            return None, None
        return node_edge_weights(self.betas_normal, self.steps), node_edge_weights(self.betas_reduce, self.steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = self.stem0(x)
        s1 = s0 if self.stem1 is None else self.stem1(s0)
        w_normal = torch.softmax(self.alphas_normal, dim=-1)  # (E, n_ops)
        w_reduce = torch.softmax(self.alphas_reduce, dim=-1)
        e_normal, e_reduce = self.edge_weights()
        if self.arch_transform is not None:
            w_normal, w_reduce, e_normal, e_reduce = self.arch_transform(w_normal, w_reduce, e_normal, e_reduce)
        for cell in self.cells:
            if cell.reduction:
                s0, s1 = s1, cell(s0, s1, w_reduce, e_reduce)
            else:
                s0, s1 = s1, cell(s0, s1, w_normal, e_normal)
        out = self.global_pooling(s1).flatten(1)  # (N, C_last)
        return self.classifier(out)

    def genotype(self, *, max_param_free: int | None = None, max_param_free_reduce: int | None = None) -> Genotype:
        """The current discrete architecture (PC-DARTS rule; optionally the P-DARTS cap on either cell)."""
        return derive_genotype(
            self.alphas_normal,
            self.alphas_reduce,
            self.betas_normal if self.edge_norm else None,
            self.betas_reduce if self.edge_norm else None,
            max_param_free=max_param_free,
            max_param_free_reduce=max_param_free_reduce,
            ops=self.ops,
        )

    def arch_state(self) -> dict[str, Any]:
        """alpha (and beta when edge normalisation is on) as plain lists, with the op space (the names of
        alpha's columns), for arch.json and the history."""
        state: dict[str, Any] = {
            n: getattr(self, n).detach().cpu().tolist() for n in self._ARCH if self.edge_norm or n.startswith("alphas")
        }
        state.update(self.space.to_dict())
        return state
