"""The modules of the candidate operations (the table of ops that builds them is ``pcdarts.nas.candidates``).

Every op maps ``(N, C, H, W)`` to ``(N, C, ceil(H/stride), ceil(W/stride))``. Ops whose last module is a
batch norm offer the ``FusableOp`` interface, so the supernet can fuse that BN with the op's weight; their
parts have names (``depthwise``, ``pointwise``, ...) over the positional ``nn.Sequential`` children, whose
state-dict keys stay as they were.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import depthwise_conv, max_pool, plain_graph


@runtime_checkable
class FusableOp(Protocol):
    """What an op offers so the supernet can run it with its final BN fused into its weight.

    ``pre_bn(x)`` is everything before ``final_bn`` (an affine-free BN in the supernet); ``leading_relu``:
    the op starts with a ReLU, which the mixed op then computes once for all such ops and passes in with
    ``relu_done=True``. An op without this interface runs through its own ``forward``.
    """

    leading_relu: bool

    def pre_bn(self, x: torch.Tensor, relu_done: bool = False) -> torch.Tensor: ...

    @property
    def final_bn(self) -> nn.BatchNorm2d: ...


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
        if not (self.stride == 1 and x.device.type == "cpu") or plain_graph():  # traced: the plain pool
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


class DepthwiseConv2d(nn.Conv2d):
    """Depthwise conv (groups = channels) with the fast CPU backward of ``depthwise_conv``."""

    def __init__(self, c: int, kernel: int, stride: int, padding: int, dilation: int = 1):
        super().__init__(c, c, kernel, stride, padding, dilation=dilation, groups=c, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_conv(x, self.weight, self.stride[0], self.padding[0], self.dilation[0])


class ReLUConvBN(nn.Sequential):
    """ReLU, conv, BN: the cells' preprocessing, and the ``nor_conv`` candidates of the nb201 space."""

    leading_relu = True

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    @property
    def conv(self) -> nn.Conv2d:
        return self[1]

    @property
    def final_bn(self) -> nn.BatchNorm2d:
        return self[2]

    def pre_bn(self, x: torch.Tensor, relu_done: bool = False) -> torch.Tensor:
        return self.conv(x if relu_done else self[0](x))


class DilConv(nn.Sequential):
    """ReLU, depthwise (dilated) conv, pointwise conv, BN."""

    leading_relu = True  # the supernet computes ReLU(x) once for all ops that start with one

    def pre_bn(self, x: torch.Tensor, relu_done: bool = False) -> torch.Tensor:
        """Everything but the final batch norm (``final_bn``); ``relu_done``: x is already ReLU'd."""
        return self.pointwise(self.depthwise(x if relu_done else self[0](x)))

    @property
    def depthwise(self) -> DepthwiseConv2d:
        return self[1]

    @property
    def pointwise(self) -> nn.Conv2d:
        return self[2]

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
        first = self.first
        return self.second.pre_bn(first.final_bn(first.pre_bn(x, relu_done)))

    @property
    def first(self) -> DilConv:
        return self[0]

    @property
    def second(self) -> DilConv:
        return self[1]

    @property
    def final_bn(self) -> nn.BatchNorm2d:
        return self.second.final_bn


class PoolBN(nn.Sequential):
    """A pooling op followed by an affine-free BN, as the supernet runs its pooling candidates."""

    leading_relu = False

    def __init__(self, pool: nn.Module, c: int):
        super().__init__(pool, nn.BatchNorm2d(c, affine=False))

    def pre_bn(self, x: torch.Tensor, relu_done: bool = False) -> torch.Tensor:
        return self.pool(x)

    @property
    def pool(self) -> nn.Module:
        return self[0]

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
        if torch.jit.is_tracing() or odd.shape[-2:] != even.shape[-2:]:  # traced: pad by traced sizes, no branch
            odd = F.pad(odd, (0, even.shape[-1] - odd.shape[-1], 0, even.shape[-2] - odd.shape[-2]))
        return torch.cat([F.conv2d(even, self.conv_1.weight), F.conv2d(odd, self.conv_2.weight)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pre_bn(x))

    @property
    def final_bn(self) -> nn.BatchNorm2d:
        return self.bn
