"""Candidate operations of the DARTS cell space and the ``OPS`` registry.

Every constructor has the signature ``(C, stride, affine) -> nn.Module`` and
maps ``(N, C, H, W)`` to ``(N, C, ceil(H/stride), ceil(W/stride))``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
"""The eight searchable primitives, in the paper's order (index = alpha column)."""

OpFactory = Callable[[int, int, bool], nn.Module]
OPS: dict[str, OpFactory] = {}


def register_op(name: str) -> Callable[[OpFactory], OpFactory]:
    """Add a constructor to ``OPS``; refuses a second registration of a name."""

    def wrap(fn: OpFactory) -> OpFactory:
        if name in OPS:
            raise ValueError(f"operation {name!r} is already registered")
        OPS[name] = fn
        return fn

    return wrap


# ------------------------------------------------------------------ kernels
# Measured on torch 2.13 CPU (docs/BENCHMARKS.md): 3x3 max pooling runs 1.3-2.6x faster on channels_last
# input, and a stride-1 3x3 average pool 2-3x faster as two separable box sums. The depthwise convs of the
# sep/dil ops get their own backward on CPU: PyTorch's CPU backward of a 5x5 or dilated depthwise conv is
# 3-5x slower than its forward kernel, and both gradients can be written as forward convolutions.
# Max pooling keeps its input (usually a view of a cell state, so no new bytes) instead of int64 indices
# twice the size of its output, and finds the indices again in the backward pass.
# The plain PyTorch forms live in ``pcdarts.bench.reference`` (the benchmark's baseline; tests bound the
# difference). Tried and dropped: channels_last depthwise convs and matmul 1x1 convs win alone but slow the
# whole step (layout copies, slower BN); whole-model channels_last crashed the CPU build (heap corruption).
# 1x1 convs as one batched matrix product were 6-20x faster alone on (64, 4, 32, 32) maps and still made the
# whole step 11 % slower when swapped in op by op (measured 2026-12-02, steps alternated in one process); the
# supernet now stacks all edges of a state (``fanout``), where one matmul replaces 4-16 convs and does pay.
# A custom backward for the channel split of each edge (one write instead of two zero-filled slices) made the
# step 5 % slower; a strided depthwise backward written as a transposed conv was no faster than PyTorch's.


def _plain_graph() -> bool:
    """True where a custom autograd function should step aside: tracing and ``torch.compile``."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


class _MaxPoolFn(torch.autograd.Function):
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
        return _shifted_max(x, kernel, stride, padding, ceil)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None, None]:
        (x,) = ctx.saved_tensors
        kernel, stride, padding, ceil = ctx.args
        with torch.enable_grad():  # channels_last pays for 3x3 windows, not for the 2x2 bypass pool (measured)
            xd = (_pool_layout(x.detach()) if kernel > 2 else x.detach().contiguous()).requires_grad_(True)
            y = F.max_pool2d(xd, kernel, stride, padding, ceil_mode=ceil)
        (gx,) = torch.autograd.grad(y, xd, grad)
        return gx.contiguous(), None, None, None, None


def _out_size(n: int, kernel: int, stride: int, padding: int, ceil: bool) -> int:
    span = n + 2 * padding - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= n + padding:  # PyTorch: the last window must start inside the input
        out -= 1
    return out


def _shifted_max(x: torch.Tensor, kernel: int, stride: int, padding: int, ceil: bool) -> torch.Tensor:
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


def _pool_layout(x: torch.Tensor) -> torch.Tensor:
    """channels_last on CPU, where its max-pool kernels are faster; as given elsewhere."""
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def max_pool(x: torch.Tensor, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> torch.Tensor:
    """``F.max_pool2d`` without the saved int64 indices (twice the output's bytes) when a backward will run."""
    if torch.is_grad_enabled() and x.requires_grad and not _plain_graph():
        return _MaxPoolFn.apply(x, kernel, stride, padding, ceil_mode)
    return _shifted_max(x, kernel, stride, padding, ceil_mode)


class MaxPool3x3(nn.MaxPool2d):
    def __init__(self, stride: int):
        super().__init__(3, stride=stride, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool(x, 3, self.stride, 1)


class AvgPool3x3(nn.AvgPool2d):
    """3x3 average pool that ignores padding (count_include_pad=False)."""

    def __init__(self, stride: int):
        super().__init__(3, stride=stride, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.stride == 1 and x.device.type == "cpu"):
            return super().forward(x)
        h, w = x.shape[-2:]
        p = F.pad(x, (1, 1, 1, 1))  # (N, C, H+2, W+2)
        rows = p[:, :, :-2] + p[:, :, 1:-1] + p[:, :, 2:]  # (N, C, H, W+2)
        box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]  # (N, C, H, W)
        return box / _window_counts(h, w, x.device, x.dtype)


def _window_counts(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """How many real pixels each 3x3 window covers (3x3 inside, 2x3 / 2x2 on borders)."""
    ry = torch.full((h,), 3.0, device=device, dtype=dtype)
    rx = torch.full((w,), 3.0, device=device, dtype=dtype)
    ry[0] -= 1
    ry[-1] -= 1
    rx[0] -= 1
    rx[-1] -= 1
    if h == 1:
        ry[0] = 1
    if w == 1:
        rx[0] = 1
    return ry[:, None] * rx[None, :]


class _DepthwiseConvFn(torch.autograd.Function):
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


class _ScaledBatchNormFn(torch.autograd.Function):
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
        return y.mul_(_per_channel(w))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, w, mean, invstd = ctx.saved_tensors
        grad_h = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_h = torch.ops.aten.native_batch_norm_backward(
                grad * _per_channel(w), h, None, None, None, mean, invstd, True, ctx.eps, [True, False, False]
            )[0]
        if ctx.needs_input_grad[1]:
            shape = (1, -1, 1, 1)
            prod = grad * ((h - mean.view(shape)) * invstd.view(shape))
            grad_w = (prod.sum() if w.dim() == 0 else prod.sum((0, 2, 3))).to(w.dtype)
        return grad_h, grad_w, None, None, None, None


def _per_channel(w: torch.Tensor) -> torch.Tensor:
    """A scalar as it is; a vector of per-channel weights shaped to broadcast over (N, C, H, W)."""
    return w if w.dim() == 0 else w.view(1, -1, 1, 1)


def _cpu_autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 has no device argument
        return torch.is_autocast_cpu_enabled()


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, dilation: int) -> torch.Tensor:
    """Depthwise conv (one filter per channel) with the fast CPU backward where it pays (see above).

    3x3 undilated and strided convs keep PyTorch's backward, which is as fast or faster there (measured).
    """
    span = dilation * (weight.shape[-1] - 1) + 1
    if (
        stride == 1
        and span > 3
        and x.device.type == "cpu"
        and x.dtype == weight.dtype
        and torch.is_grad_enabled()
        and not _cpu_autocast_on()
        and not _plain_graph()
    ):
        return _DepthwiseConvFn.apply(x, weight, padding, dilation)
    return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])


class DepthwiseConv2d(nn.Conv2d):
    """Depthwise conv (groups = channels) with the fast CPU backward of ``depthwise_conv``."""

    def __init__(self, c: int, kernel: int, stride: int, padding: int, dilation: int = 1):
        super().__init__(c, c, kernel, stride, padding, dilation=dilation, groups=c, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_conv(x, self.weight, self.stride[0], self.padding[0], self.dilation[0])


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise (dilated) conv, pointwise conv, BN."""

    leading_relu = True  # the supernet computes ReLU(x) once for all ops that start with one

    def pre_bn(self, x: torch.Tensor, relu_done: bool = False) -> torch.Tensor:
        """Everything but the final batch norm (``final_bn``); ``relu_done``: x is already ReLU'd."""
        return self[2](self[1](x if relu_done else self[0](x)))

    @property
    def final_bn(self) -> nn.BatchNorm2d:
        return self[3]

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool = True
    ):
        super().__init__(
            nn.ReLU(inplace=False),
            DepthwiseConv2d(c_in, kernel, stride, padding, dilation),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked DilConv blocks with dilation 1; only the first one strides."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )

    leading_relu = True

    def pre_bn(self, x: torch.Tensor, relu_done: bool = False) -> torch.Tensor:
        first = self[0]
        return self[1].pre_bn(first.final_bn(first.pre_bn(x, relu_done)))

    @property
    def final_bn(self) -> nn.BatchNorm2d:
        return self[1].final_bn


class PoolBN(nn.Sequential):
    """A pooling op followed by an affine-free BN, as the supernet runs its pooling candidates."""

    leading_relu = False

    def __init__(self, pool: nn.Module, c: int):
        super().__init__(pool, nn.BatchNorm2d(c, affine=False))

    def pre_bn(self, x: torch.Tensor, relu_done: bool = False) -> torch.Tensor:
        return self[0](x)

    @property
    def final_bn(self) -> nn.BatchNorm2d:
        return self[1]


class Conv7x1x1x7(nn.Sequential):
    """Factorised 7x7 conv used by NASNet/AmoebaNet genotypes."""

    def __init__(self, c: int, stride: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(c, c, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros of the output shape (mixed ops skip it entirely)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two 1x1 stride-2 convs, the second on a one-pixel shift.

    A 1x1 stride-2 conv reads only every other pixel, so both branches subsample first (ReLU and conv
    on a quarter of the pixels, no padded copy of the whole map). On odd sizes the shifted branch reads
    one zero pixel past the edge, as zero padding would give; on even sizes this is the reference's
    ``conv_2(x[:, :, 1:, 1:])`` exactly.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    leading_relu = True

    def pre_bn(self, x: torch.Tensor, relu_done: bool = False) -> torch.Tensor:
        """Everything but the final batch norm (the supernet fuses that with the op's weight)."""
        even, odd = x[:, :, ::2, ::2], x[:, :, 1::2, 1::2]  # ReLU commutes with subsampling
        if not relu_done:
            even, odd = self.relu(even), self.relu(odd)
        if odd.shape[-2:] != even.shape[-2:]:
            odd = F.pad(odd, (0, even.shape[-1] - odd.shape[-1], 0, even.shape[-2] - odd.shape[-2]))
        return torch.cat([F.conv2d(even, self.conv_1.weight), F.conv2d(odd, self.conv_2.weight)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pre_bn(x))

    @property
    def final_bn(self) -> nn.BatchNorm2d:
        return self.bn


register_op("none")(lambda c, stride, affine: Zero(stride))
register_op("avg_pool_3x3")(lambda c, stride, affine: AvgPool3x3(stride))
register_op("max_pool_3x3")(lambda c, stride, affine: MaxPool3x3(stride))
register_op("skip_connect")(lambda c, stride, affine: nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine))
register_op("sep_conv_3x3")(lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine))
register_op("sep_conv_5x5")(lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine))
register_op("sep_conv_7x7")(lambda c, stride, affine: SepConv(c, c, 7, stride, 3, affine))
register_op("dil_conv_3x3")(lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine))
register_op("dil_conv_5x5")(lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine))
register_op("conv_7x1_1x7")(lambda c, stride, affine: Conv7x1x1x7(c, stride, affine))


def is_parameter_free(name: str) -> bool:
    """Pooling and identity ops: the ones that take over when DARTS collapses."""
    return name in ("max_pool_3x3", "avg_pool_3x3", "skip_connect")
