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

from .kernels import ScaledBatchNormFn, autocast_dtype, custom_backward_ok, depthwise_conv, plain_graph
from .ops import DilConv, FactorizedReduce, PoolBN, ReLUConvBN, SepConv


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
    if custom_backward_ok(h):
        out = ScaledBatchNormFn.apply(h, w, mean, var, bns[0].momentum, bns[0].eps)
    else:  # autocast (or no backward to come): PyTorch's own BN and product, autograd keeps what it needs
        out = w.view(1, -1, 1, 1) * F.batch_norm(h, mean, var, None, None, True, bns[0].momentum, bns[0].eps)
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
    dtype = bns[0].running_mean.dtype
    if h.dtype != dtype:  # autocast: the batch statistics in the buffers' precision, as each BN would keep them
        mean = torch.zeros(h.shape[1], dtype=dtype, device=h.device)
        var = torch.ones_like(mean)
        out = F.batch_norm(h, mean, var, None, None, True, 1.0, eps)  # momentum 1: the buffers get the batch's
    else:
        out, mean, invstd = torch.native_batch_norm(h, None, None, None, None, True, 0.0, eps)
        count = h.numel() // h.shape[1]
        var = (invstd.detach().pow(-2) - eps) * (count / (count - 1))  # unbiased, as BN's running_var
    torch._foreach_lerp_([b.running_mean for b in bns], [mean.detach().to(dtype)] * len(bns), m)
    torch._foreach_lerp_([b.running_var for b in bns], [var.to(dtype)] * len(bns), m)
    torch._foreach_add_([b.num_batches_tracked for b in bns], 1)
    return out.unsqueeze(1)


def fan_kind(declared: str | None, op: nn.Module, stride: int) -> str | None:
    """How the fast path computes the module ``op`` (built from an op declared with ``fan_out=declared``):
    the declared kind when ``op`` is the module that kind expects, else None (the op runs edge by edge)."""
    if declared == "sep_conv" and type(op) is SepConv:
        return declared
    if declared == "dil_conv" and type(op) is DilConv:
        return declared
    if declared == "nor_conv" and type(op) is ReLUConvBN:
        return declared
    if declared == "skip" and type(op) is (nn.Identity if stride == 1 else FactorizedReduce):
        return declared
    if declared == "pool" and type(op) is PoolBN and not any(True for _ in op.pool.parameters()):
        if not any(True for _ in op.pool.buffers()):
            return declared
    return None


def fast_modules(edges: Sequence[nn.Module]) -> list[nn.Module]:
    """The candidate-op modules of ``edges`` that the fast path computes (those with a fan-out kind)."""
    return [op for e in edges for op, kind in zip(e.op.ops, e.op.kinds) if kind is not None]


def can_fan_out(cell: nn.Module, h: torch.Tensor) -> bool:
    """The one gate of the fast path: whether ``cell``'s edges can run state by state on input ``h``.

    Not traced or compiled, ``h`` in the cell's dtype (or autocast's, when autocast is on), more than one sample
    in training (one sample: let BN refuse a 1x1 map as it does), and the fast ops' BNs plain affine-free
    ``BatchNorm2d`` in the cell's mode, tracking statistics, all with one eps and, in training, one fixed
    momentum (the cumulative average, momentum None, counts per module). Ops the fast path does not know do not
    matter here: they run edge by edge inside the fanned cell. Anything else runs the whole cell edge by edge.
    """
    training = cell.training
    bns = (m for m in cell.modules() if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None)
    ref = next((m.running_mean for m in bns), None)  # the dtype the cell's statistics are kept in
    if ref is None or plain_graph() or h.dtype not in (ref.dtype, autocast_dtype(h.device)):
        return False
    if training and h.shape[0] <= 1:
        return False
    settings = set()
    for op in fast_modules(cell.edges):
        for m in op.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase):
                if type(m) is not nn.BatchNorm2d or m.weight is not None or not m.track_running_stats:
                    return False
                if m.training != training or (training and m.momentum is None):
                    return False
                settings.add((m.eps, m.momentum if training else None))
    return len(settings) <= 1


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


def _add(out: torch.Tensor | None, term: torch.Tensor) -> torch.Tensor:
    return term if out is None else out + term


def fan_out(x: torch.Tensor, edges: Sequence[nn.Module], weights: torch.Tensor) -> torch.Tensor:
    """The mixed-op outputs of ``edges`` (all reading ``x``, same stride and ops) as one ``(N, E, C, H', W')``.

    ``weights`` is ``(E, n_ops)``: each edge's op weights (edge normalisation already folded in), one
    column per op of the space. Edge e's output is ``sum_k weights[e, k] * op_k(x)`` over its ops; ``none``
    adds nothing. Stacked convs come first, then the skip, the pools, and the ops computed edge by edge, each
    group in column order (the order fixes the float rounding).
    """
    mixed = edges[0].op
    n_edges, stride = len(edges), edges[0].stride
    n, c = x.shape[:2]
    plan = list(zip(mixed.op_index, range(len(mixed.ops)), mixed.kinds))
    convs = [(k, i, kind) for k, i, kind in plan if kind in ("sep_conv", "dil_conv", "nor_conv")]
    rep = r = None
    if any(kind != "nor_conv" for _, _, kind in convs):
        rep = torch.relu_(x.repeat(1, n_edges, 1, 1))  # (N, E*C, H, W): edge e's kernels read block e
        r = rep[:, :c]  # ReLU(x), not kept twice
    elif convs or mixed.shares_relu:
        r = torch.relu(x)
    flat = None  # (N, E*C, H', W') sum of the stacked convs
    for k, i, kind in convs:
        ops = [e.op.ops[i] for e in edges]
        if kind == "nor_conv":  # every edge reads all of ReLU(x): one dense conv, the edges' kernels as its outputs
            c0 = ops[0].conv
            weight = torch.cat([op.conv.weight for op in ops])  # (E*C, C, k, k)
            h = F.conv2d(r, weight, None, c0.stride, c0.padding, c0.dilation)
            flat = _add(flat, stacked_scaled_batch_norm(h, weights[:, k], [op.final_bn for op in ops]))
            continue
        if kind == "sep_conv":
            first = [op.first for op in ops]
            h = _pointwise(_depthwise(rep, [b.depthwise for b in first]), [b.pointwise for b in first])
            h = torch.relu(stacked_batch_norm(h, [b.final_bn for b in first]))
            blocks = [op.second for op in ops]
        else:
            h, blocks = rep, ops
        h = _pointwise(_depthwise(h, [b.depthwise for b in blocks]), [b.pointwise for b in blocks])
        flat = _add(flat, stacked_scaled_batch_norm(h, weights[:, k], [b.final_bn for b in blocks]))
    out = None if flat is None else flat.view(n, n_edges, c, *flat.shape[-2:])
    for k, i, kind in plan:
        if kind != "skip":
            continue
        if stride == 1:
            w = weights[:, k].view(1, -1, 1, 1, 1)
            out = w * x.unsqueeze(1) if out is None else torch.addcmul(out, w, x.unsqueeze(1))
            continue
        frs = [e.op.ops[i] for e in edges]
        even, odd = r[:, :, ::2, ::2], r[:, :, 1::2, 1::2]
        if odd.shape[-2:] != even.shape[-2:]:
            odd = F.pad(odd, (0, even.shape[-1] - odd.shape[-1], 0, even.shape[-2] - odd.shape[-2]))
        weight = torch.cat(
            [torch.block_diag(f.conv_1.weight.flatten(1), f.conv_2.weight.flatten(1)) for f in frs]
        )  # (E*C, 2C): edge e's rows are [conv_1 on even, conv_2 on odd]
        pair = torch.cat([even, odd], dim=1)
        h = torch.matmul(weight, pair.flatten(2)).view(n, -1, *pair.shape[-2:])
        term = stacked_scaled_batch_norm(h, weights[:, k], [f.final_bn for f in frs])
        out = _add(out, term.view(n, n_edges, c, *term.shape[-2:]))
    for k, i, kind in plan:
        if kind != "pool":
            continue
        pools = [e.op.ops[i] for e in edges]
        shared = shared_batch_norm(pools[0].pool(x), [p.final_bn for p in pools])
        w = weights[:, k].view(1, -1, 1, 1, 1)
        out = w * shared if out is None else torch.addcmul(out, w, shared)
    for k, i, kind in plan:
        if kind is None:  # an op the fast path does not know: edge by edge, exactly as the mixed op runs it
            term = torch.stack([e.op.term(i, x, r, weights[t, k]) for t, e in enumerate(edges)], dim=1)
            out = _add(out, term)
    assert out is not None, "a space holds at least one op besides none (checked by op_space)"
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
