"""The PC-DARTS supernet: partial-channel mixed ops, search cells, search network.

PC-DARTS Sec. 3.2 (partial channel connection): on each edge only ``C/K``
channels run through the softmax(alpha)-weighted candidate ops; the rest
bypass them and a channel shuffle mixes the two parts.  Sec. 3.3 (edge
normalisation): a per-edge beta, softmax-normalised over the edges entering
each node, weights the edges.  alpha and beta are registered parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .genotype import Genotype, derive_genotype, node_edge_weights, num_edges
from .ops import OPS, PRIMITIVES, FactorizedReduce, ReLUConvBN


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


def _accumulate(total: torch.Tensor | None, weight: torch.Tensor, y: torch.Tensor, fused: bool) -> torch.Tensor:
    """``total + weight * y`` (``weight * y`` when there is no total yet), one kernel when ``fused``."""
    if total is None:
        return weight * y
    return torch.addcmul(total, weight, y) if fused else total + weight * y


class MixedOp(nn.Module):
    """softmax(alpha)-weighted sum of all candidate ops; ``none`` adds zeros, so it is skipped."""

    skip_none = (
        True  # set False per instance for the benchmark baseline: compute zeros and add them, as the reference does
    )
    fast = True  # fused multiply-add accumulation (``set_fast_kernels``)

    def __init__(self, c: int, stride: int):
        super().__init__()
        self.ops = nn.ModuleList()
        self.op_index: list[int] = []
        self.zero = OPS["none"](c, stride, False)
        for k, name in enumerate(PRIMITIVES):
            if name == "none":
                continue
            op = OPS[name](c, stride, False)
            if "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            self.ops.append(op)
            self.op_index.append(k)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = None if self.skip_none else weights[PRIMITIVES.index("none")] * self.zero(x)
        for k, op in zip(self.op_index, self.ops):
            out = _accumulate(out, weights[k], op(x), self.fast)
        return out


class PartialEdge(nn.Module):
    """One supernet edge with partial channel connection (K=1: plain DARTS)."""

    fast = True  # cat and shuffle in one copy (``set_fast_kernels``)

    def __init__(self, c: int, stride: int, k: int, mode: str = "shuffle"):
        super().__init__()
        if c % k:
            raise ConfigError(f"channels {c} not divisible by K={k}: choose init channels divisible by K")
        if mode not in ("shuffle", "shift"):
            raise ConfigError(f"partial mode must be 'shuffle' or 'shift', got {mode!r}")
        self.k, self.stride, self.mode = k, stride, mode
        self.c_part = c // k
        self.op = MixedOp(self.c_part, stride)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.k == 1:
            return self.op(x, weights)
        x_op, x_bypass = x[:, : self.c_part], x[:, self.c_part :]  # (N, C/K, H, W), (N, C-C/K, H, W)
        y = self.op(x_op, weights)
        if self.stride == 2:
            x_bypass = F.max_pool2d(x_bypass, 2, 2, ceil_mode=True)
        if self.mode == "shift":
            return torch.cat([x_bypass, y], dim=1)  # rotate: processed channels move to the end
        if self.fast:
            return cat_shuffle(y, x_bypass, self.k)
        return channel_shuffle(torch.cat([y, x_bypass], dim=1), self.k)


class SearchCell(nn.Module):
    fast = True  # fused multiply-add accumulation of the edges (``set_fast_kernels``)

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
    ):
        super().__init__()
        self.reduction, self.steps, self.multiplier = reduction, steps, multiplier
        self.preprocess0 = (
            FactorizedReduce(c_pp, c, affine=False) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, False)
        )
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, False)
        self.edges = nn.ModuleList()
        for i in range(steps):
            for j in range(i + 2):
                stride = 2 if reduction and j < 2 else 1
                self.edges.append(PartialEdge(c, stride, k, mode))

    def forward(
        self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, edge_w: torch.Tensor | None
    ) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.steps):
            total = None
            for j, h in enumerate(states):
                y = self.edges[offset + j](h, weights[offset + j])
                if edge_w is None:
                    total = y if total is None else total + y
                else:
                    total = _accumulate(total, edge_w[offset + j], y, self.fast)
            offset += len(states)
            states.append(total)
        return torch.cat(states[-self.multiplier :], dim=1)  # (N, multiplier*C, H', W')


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
    ):
        super().__init__()
        if layers < 3:
            raise ConfigError(f"layers must be >= 3 (two reduction cells and a normal cell), got {layers}")
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
            raise ConfigError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        self.cells = nn.ModuleList()
        c_curr = c
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            cell = SearchCell(steps, multiplier, c_pp, c_p, c_curr, reduction, reduction_prev, k, partial_mode)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, multiplier * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        e, n_ops = num_edges(steps), len(PRIMITIVES)
        # alpha/beta: registered so they live in state_dict, move with .to(), and work with DDP.
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(e, n_ops))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(e, n_ops))
        self.betas_normal = nn.Parameter(1e-3 * torch.randn(e))
        self.betas_reduce = nn.Parameter(1e-3 * torch.randn(e))

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
        for cell in self.cells:
            if cell.reduction:
                s0, s1 = s1, cell(s0, s1, w_reduce, e_reduce)
            else:
                s0, s1 = s1, cell(s0, s1, w_normal, e_normal)
        out = self.global_pooling(s1).flatten(1)  # (N, C_last)
        return self.classifier(out)

    def genotype(self, *, max_param_free: int | None = None) -> Genotype:
        """The current discrete architecture (PC-DARTS rule; optionally the P-DARTS cap)."""
        if self.edge_norm:
            return derive_genotype(
                self.alphas_normal,
                self.alphas_reduce,
                self.betas_normal,
                self.betas_reduce,
                max_param_free=max_param_free,
            )
        return derive_genotype(self.alphas_normal, self.alphas_reduce, max_param_free=max_param_free)

    def arch_state(self) -> dict[str, list]:
        """alpha (and beta when edge normalisation is on) as plain lists, for arch.json and the history."""
        return {
            n: getattr(self, n).detach().cpu().tolist() for n in self._ARCH if self.edge_norm or n.startswith("alphas")
        }
