"""All the edges that leave one state of a search cell, computed together.

The edges from one state read the same C/K input channels. In training their parameter-free candidates
(max and average pooling, each followed by an affine-free BN, and the identity) have the same value on every
one of those edges (batch statistics), so they are computed once. Their conv candidates differ only in their
weights, so each kind of conv runs once for all the edges, with the edges' kernels stacked along the channel
axis: a depthwise conv stays one depthwise conv, the pointwise convs become one batched matrix product, and
the BNs one BN over the stacked channels. On the DARTS cell that turns 14 edges x 12 small convs per cell
into 5 groups x 12 larger ones (6 depthwise convs, 6 batched matmuls); on CPU, small-map kernels and
per-call overhead had dominated the step.
Each module keeps its own parameters and BN buffers; the sums equal the per-edge ones up to float rounding
(tests compare both in float64, values, gradients and running statistics).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .ops import PRIMITIVES, _ScaledBatchNormFn, depthwise_conv, max_pool

_MAX, _AVG, _SKIP = (PRIMITIVES.index(n) for n in ("max_pool_3x3", "avg_pool_3x3", "skip_connect"))
_SEP3, _SEP5, _DIL3, _DIL5 = (
    PRIMITIVES.index(n) for n in ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
)
_CONV_KINDS = (_SEP3, _SEP5, _DIL3, _DIL5)


def _stacked(bns: Sequence[nn.BatchNorm2d]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([b.running_mean for b in bns]), torch.cat([b.running_var for b in bns])


def _write_back(bns: Sequence[nn.BatchNorm2d], mean: torch.Tensor, var: torch.Tensor) -> None:
    """Copy stacked running statistics back to their modules and count the batch, as each BN would."""
    c = bns[0].num_features
    torch._foreach_copy_([b.running_mean for b in bns], list(mean.split(c)))
    torch._foreach_copy_([b.running_var for b in bns], list(var.split(c)))
    torch._foreach_add_([b.num_batches_tracked for b in bns], 1)


def stacked_batch_norm(h: torch.Tensor, bns: Sequence[nn.BatchNorm2d]) -> torch.Tensor:
    """Affine-free BN of channel blocks ``h = cat(h_e)``, block e with ``bns[e]``'s buffers (and mode)."""
    mean, var = _stacked(bns)
    training = bns[0].training
    out = F.batch_norm(h, mean, var, None, None, training, bns[0].momentum if training else 0.0, bns[0].eps)
    if training:
        _write_back(bns, mean, var)
    return out


def stacked_scaled_batch_norm(h: torch.Tensor, w: torch.Tensor, bns: Sequence[nn.BatchNorm2d]) -> torch.Tensor:
    """``w[e] * bns[e](h_e)`` for the channel blocks of ``h``, without keeping the BN output (see supernet)."""
    mean, var = _stacked(bns)
    c = bns[0].num_features
    w = w.repeat_interleave(c)
    if not bns[0].training:
        return w.view(1, -1, 1, 1) * F.batch_norm(h, mean, var, None, None, False, 0.0, bns[0].eps)
    if torch.compiler.is_compiling():  # a traced graph gets the plain form
        out = w.view(1, -1, 1, 1) * F.batch_norm(h, mean, var, None, None, True, bns[0].momentum, bns[0].eps)
    else:
        out = _ScaledBatchNormFn.apply(h, w, mean, var, bns[0].momentum, bns[0].eps)
    _write_back(bns, mean, var)
    return out


def shared_batch_norm(h: torch.Tensor, bns: Sequence[nn.BatchNorm2d]) -> torch.Tensor:
    """``bns[e](h)`` for every e, shaped to broadcast over ``(N, E, C, H, W)``.

    In training the value is the same for every e (batch statistics): computed once, each module's running
    statistics moved. In evaluation each module's own running statistics normalise ``h``.
    """
    eps, m = bns[0].eps, bns[0].momentum
    if not bns[0].training:
        mean, var = (t.view(1, len(bns), -1, 1, 1) for t in _stacked(bns))
        return (h.unsqueeze(1) - mean) * torch.rsqrt(var + eps)
    out, mean, invstd = torch.native_batch_norm(h, None, None, None, None, True, 0.0, eps)
    count = h.numel() // h.shape[1]
    var = (invstd.detach().pow(-2) - eps) * (count / (count - 1))  # unbiased, as BN's running_var
    dtype = bns[0].running_mean.dtype  # CUDA's BN gives float32 statistics for half input
    torch._foreach_lerp_([b.running_mean for b in bns], [mean.detach().to(dtype)] * len(bns), m)
    torch._foreach_lerp_([b.running_var for b in bns], [var.to(dtype)] * len(bns), m)
    torch._foreach_add_([b.num_batches_tracked for b in bns], 1)
    return out.unsqueeze(1)


def can_fan_out(edges: Sequence[nn.Module], training: bool) -> bool:
    """Whether ``fan_out`` applies to these edges' BNs: plain affine-free ``BatchNorm2d`` in the given mode,
    tracking statistics, all with one eps and, in training, one fixed momentum (the cumulative average,
    momentum None, counts per module). Anything else runs edge by edge."""
    settings = set()
    for edge in edges:
        for m in edge.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase):
                if type(m) is not nn.BatchNorm2d or m.weight is not None or not m.track_running_stats:
                    return False
                if m.training != training or (training and m.momentum is None):
                    return False
                settings.add((m.eps, m.momentum if training else None))
    return len(settings) <= 1


def _op(edge: nn.Module, kind: int) -> nn.Module:
    mixed = edge.op
    return mixed.ops[mixed.op_index.index(kind)]


def _pointwise(x: torch.Tensor, convs: Sequence[nn.Conv2d]) -> torch.Tensor:
    """Per channel block e, the 1x1 conv ``convs[e]``: one batched matrix product for all blocks."""
    n, _, h, w = x.shape
    groups = len(convs)
    weight = torch.stack([c.weight.flatten(1) for c in convs])  # (E, C_out, C_in)
    c_in = weight.shape[-1]
    return torch.matmul(weight, x.view(n, groups, c_in, h * w)).view(n, -1, h, w)


def _depthwise(x: torch.Tensor, convs: Sequence[nn.Conv2d]) -> torch.Tensor:
    """Per channel block e, the depthwise conv ``convs[e]`` (all with the same geometry): one conv."""
    c0 = convs[0]
    weight = torch.cat([c.weight for c in convs])
    return depthwise_conv(x, weight, c0.stride[0], c0.padding[0], c0.dilation[0])


def fan_out(x: torch.Tensor, edges: Sequence[nn.Module], weights: torch.Tensor) -> torch.Tensor:
    """The mixed-op outputs of ``edges`` (all reading ``x``, same stride) as one ``(N, E, C, H', W')`` tensor.

    ``weights`` is ``(E, len(PRIMITIVES))``: each edge's op weights (edge normalisation already folded in).
    Edge e's output is ``sum_k weights[e, k] * op_k(x)`` over its ops; ``none`` adds nothing.
    """
    n_edges = len(edges)
    stride = edges[0].stride
    n = x.shape[0]
    c = x.shape[1]
    rep = torch.relu_(x.repeat(1, n_edges, 1, 1))  # (N, E*C, H, W): edge e's kernels read block e
    r = rep[:, :c]  # ReLU(x), not kept twice
    out = None
    for kind in _CONV_KINDS:
        ops = [_op(e, kind) for e in edges]
        if kind in (_SEP3, _SEP5):
            first = [op[0] for op in ops]
            h = _pointwise(_depthwise(rep, [b[1] for b in first]), [b[2] for b in first])
            h = torch.relu(stacked_batch_norm(h, [b[3] for b in first]))
            blocks = [op[1] for op in ops]
        else:
            h, blocks = rep, ops
        h = _pointwise(_depthwise(h, [b[1] for b in blocks]), [b[2] for b in blocks])
        term = stacked_scaled_batch_norm(h, weights[:, kind], [b[3] for b in blocks])
        out = term if out is None else out + term
    out = out.view(n, n_edges, c, *out.shape[-2:])
    if stride == 1:
        out = torch.addcmul(out, weights[:, _SKIP].view(1, -1, 1, 1, 1), x.unsqueeze(1))
    else:
        frs = [_op(e, _SKIP) for e in edges]
        even, odd = r[:, :, ::2, ::2], r[:, :, 1::2, 1::2]
        if odd.shape[-2:] != even.shape[-2:]:
            odd = F.pad(odd, (0, even.shape[-1] - odd.shape[-1], 0, even.shape[-2] - odd.shape[-2]))
        weight = torch.cat(
            [torch.block_diag(f.conv_1.weight.flatten(1), f.conv_2.weight.flatten(1)) for f in frs]
        )  # (E*C, 2C): edge e's rows are [conv_1 on even, conv_2 on odd]
        pair = torch.cat([even, odd], dim=1)
        h = torch.matmul(weight, pair.flatten(2)).view(n, -1, *pair.shape[-2:])
        term = stacked_scaled_batch_norm(h, weights[:, _SKIP], [f.bn for f in frs])
        out = out + term.view_as(out)
    for kind in (_MAX, _AVG):
        pools = [_op(e, kind) for e in edges]
        if kind == _MAX:
            pooled = max_pool(x, 3, stride, 1)
        else:
            pooled = pools[0][0](x)
        shared = shared_batch_norm(pooled, [p[1] for p in pools])
        out = torch.addcmul(out, weights[:, kind].view(1, -1, 1, 1, 1), shared)
    return out


class FanOut(nn.Module):
    """The edges that leave one state of a cell, as a module (so hooks can find the segment).

    It holds the cell's edges without registering them: the cell owns their parameters and state-dict keys.
    """

    def __init__(self, edges: Sequence[nn.Module]):
        super().__init__()
        self.targets = tuple(edges)  # a tuple of modules is not registered as submodules

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return fan_out(x, self.targets, weights)
