"""The custom autograd functions and the one test of when they may replace PyTorch's own.

Each function computes exactly what PyTorch's op computes (tests bound the difference in float64) but keeps
less for the backward pass or runs a faster backward on CPU; docs/BENCHMARKS.md has the measurements and what
was tried and dropped. All are first-order: their backward builds no graph, so ``create_graph=True``
through them is not supported (the unrolled arch step uses finite differences, so nothing asks for it).
They step aside (``custom_backward_ok``) under tracing, ``torch.compile`` and autocast.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def autocast_on(device: torch.device) -> bool:
    """Whether autocast is on for ``device``'s type (the one autocast test every caller uses)."""
    try:
        return torch.is_autocast_enabled(device.type)
    except TypeError:  # torch < 2.4 has no device argument
        return torch.is_autocast_cpu_enabled() if device.type == "cpu" else torch.is_autocast_enabled()


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype autocast computes in on ``device``'s type, None when it is off."""
    if not autocast_on(device):
        return None
    try:
        return torch.get_autocast_dtype(device.type)
    except AttributeError:  # torch < 2.4
        return torch.get_autocast_cpu_dtype() if device.type == "cpu" else torch.get_autocast_gpu_dtype()


def eager(x: torch.Tensor) -> bool:
    """True where hand-arranged kernels may run on ``x``: not traced, not compiled, no autocast on its device."""
    return not plain_graph() and not autocast_on(x.device)


def custom_backward_ok(x: torch.Tensor) -> bool:
    """The gate of every custom autograd function here: a backward may follow (grad on) and ``eager(x)``."""
    return torch.is_grad_enabled() and eager(x)


def plain_graph() -> bool:
    """True where a custom autograd function should step aside: tracing and ``torch.compile``."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


class MaxPoolFn(torch.autograd.Function):
    """Max pooling that saves its input, not the indices, and finds the indices again in backward.

    The forward takes the maximum of shifted views (no index tensor, no layout copy: the maxima are
    exactly those of ``F.max_pool2d``); the backward runs PyTorch's pooling with indices on a
    copy (channels_last for 3x3 windows), so the gradient goes where PyTorch's own backward sends it.
    First-order only: the backward builds no graph, so ``create_graph=True`` through it is not supported.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel: int, stride: int, padding: int, ceil: bool) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.args = (kernel, stride, padding, ceil)
        return shifted_max(x, kernel, stride, padding, ceil)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None, None]:
        (x,) = ctx.saved_tensors
        kernel, stride, padding, ceil = ctx.args
        with torch.enable_grad():  # channels_last pays for 3x3 windows, not for the 2x2 bypass pool (measured)
            xd = (pool_layout(x.detach()) if kernel > 2 else x.detach().contiguous()).requires_grad_(True)
            y = F.max_pool2d(xd, kernel, stride, padding, ceil_mode=ceil)
        (gx,) = torch.autograd.grad(y, xd, grad)
        return gx.contiguous(), None, None, None, None


def _out_size(n: int, kernel: int, stride: int, padding: int, ceil: bool) -> int:
    span = n + 2 * padding - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= n + padding:  # PyTorch: the last window must start inside the input
        out -= 1
    return out


def shifted_max(x: torch.Tensor, kernel: int, stride: int, padding: int, ceil: bool) -> torch.Tensor:
    """Max pooling as the maximum of ``kernel`` shifted, strided views per axis (rows, then columns)."""
    h, w = x.shape[-2:]
    oh, ow = _out_size(h, kernel, stride, padding, ceil), _out_size(w, kernel, stride, padding, ceil)
    need_h, need_w = (oh - 1) * stride + kernel, (ow - 1) * stride + kernel  # padded extent the windows read
    p = F.pad(x, (padding, need_w - w - padding, padding, need_h - h - padding), value=float("-inf"))
    rows = p[..., 0 : (oh - 1) * stride + 1 : stride, :]
    for i in range(1, kernel):
        rows = torch.maximum(rows, p[..., i : i + (oh - 1) * stride + 1 : stride, :])
    out = rows[..., 0 : (ow - 1) * stride + 1 : stride]
    for j in range(1, kernel):
        out = torch.maximum(out, rows[..., j : j + (ow - 1) * stride + 1 : stride])
    return out


def pool_layout(x: torch.Tensor) -> torch.Tensor:
    """channels_last on CPU, where its max-pool kernels are faster; as given elsewhere."""
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def max_pool(x: torch.Tensor, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> torch.Tensor:
    """``F.max_pool2d`` without the saved int64 indices (twice the output's bytes) when a backward will run."""
    if x.requires_grad and custom_backward_ok(x):
        return MaxPoolFn.apply(x, kernel, stride, padding, ceil_mode)
    return shifted_max(x, kernel, stride, padding, ceil_mode)


class DepthwiseConvFn(torch.autograd.Function):
    """Stride-1 depthwise conv whose two gradients are computed with forward convolution kernels.

    grad_input is the same depthwise conv of grad_output with the kernel flipped; grad_weight is, for every
    (sample, channel) pair, a correlation of the padded input with grad_output used as the kernel -- one
    depthwise conv with N*C groups, strided by the dilation so only the taps come out -- summed over the batch.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, padding: int, dilation: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation = padding, dilation
        return F.conv2d(x, weight, None, 1, padding, dilation, x.shape[1])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        x, weight = ctx.saved_tensors
        pad, dil = ctx.padding, ctx.dilation
        n, c = x.shape[:2]
        k = weight.shape[-1]
        grad = grad.contiguous()
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad, weight.flip(-1, -2), None, 1, dil * (k - 1) - pad, dil, c)
        if ctx.needs_input_grad[1]:
            xp = F.pad(x, (pad, pad, pad, pad)).reshape(1, n * c, x.shape[2] + 2 * pad, x.shape[3] + 2 * pad)
            taps = F.conv2d(xp, grad.reshape(n * c, 1, *grad.shape[-2:]), None, dil, 0, 1, n * c)  # (1, N*C, >=k, >=k)
            grad_w = taps[..., :k, :k].reshape(n, c, k, k).sum(0).unsqueeze(1).to(weight.dtype)
        return grad_x, grad_w, None, None


class ScaledBatchNormFn(torch.autograd.Function):
    """``w * batch_norm(h)`` for an affine-free BN in training mode that keeps ``h`` and not the output.

    The output's only use in the backward pass is the op weight's gradient, sum(grad * BN(h)); BN(h) is
    recomputed there from the saved mean and 1/std. One activation fewer to keep per candidate op.
    First-order gradients only: the backward treats mean and 1/std as constants, so a gradient of this
    gradient (``create_graph=True``) would be wrong. Nothing here asks for one (the unrolled step uses
    finite differences); add a double backward before anything does.
    """

    @staticmethod
    def forward(
        ctx: Any,
        h: torch.Tensor,
        w: torch.Tensor,
        running_mean: torch.Tensor,
        running_var: torch.Tensor,
        momentum: float,
        eps: float,
    ) -> torch.Tensor:
        y, mean, invstd = torch.native_batch_norm(h, None, None, running_mean, running_var, True, momentum, eps)
        ctx.save_for_backward(h, w, mean, invstd)
        ctx.eps = eps
        return y.mul_(per_channel(w))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        # One native BN backward with the op weight as BN's gamma: its grad_input is w * BN'(grad) and its
        # grad_weight sum(grad * x_hat), the weight's gradient, reduced inside the kernel (no full-size
        # temporaries: 1.2-2.0x faster than three tensor expressions, docs/BENCHMARKS.md, on CPU).
        h, w, mean, invstd = ctx.saved_tensors
        need_h, need_w = bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[1])
        if not (need_h or need_w):
            return None, None, None, None, None, None
        gamma = (w.expand(h.shape[1]) if w.dim() == 0 else w).to(h.dtype).contiguous()
        grad_h, grad_gamma, _ = torch.ops.aten.native_batch_norm_backward(
            grad, h, gamma, None, None, mean, invstd, True, ctx.eps, [need_h, need_w, False]
        )
        grad_w = None
        if need_w:
            grad_w = (grad_gamma.sum() if w.dim() == 0 else grad_gamma).to(w.dtype)
        return (grad_h if need_h else None), grad_w, None, None, None, None


def per_channel(w: torch.Tensor) -> torch.Tensor:
    """A scalar as it is; a vector of per-channel weights shaped to broadcast over (N, C, H, W)."""
    return w if w.dim() == 0 else w.view(1, -1, 1, 1)


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, dilation: int) -> torch.Tensor:
    """Depthwise conv (one filter per channel) with the fast CPU backward where it pays (docs/BENCHMARKS.md).

    3x3 undilated and strided convs keep PyTorch's backward, which is as fast or faster there (measured).
    Traced and compiled graphs get the plain conv, decided before any size is read (a traced size is a tensor).
    """
    if stride == 1 and x.device.type == "cpu" and x.dtype == weight.dtype and custom_backward_ok(x):
        if dilation * (weight.shape[-1] - 1) + 1 > 3:
            return DepthwiseConvFn.apply(x, weight, padding, dilation)
    return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])


def scaled_batch_norm(h: torch.Tensor, w: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """``w * bn(h)``; in training with a backward to come, without keeping the BN output (``ScaledBatchNormFn``)."""
    if not (
        bn.training
        and bn.track_running_stats
        and bn.weight is None
        and h.dtype == bn.running_mean.dtype
        and h.numel() > h.shape[1]  # one value per channel: let nn.BatchNorm2d refuse it, not a NaN running_var
        and custom_backward_ok(h)
    ):
        return w * bn(h)
    bn.num_batches_tracked.add_(1)
    momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    return ScaledBatchNormFn.apply(h, w, bn.running_mean, bn.running_var, momentum, bn.eps)
