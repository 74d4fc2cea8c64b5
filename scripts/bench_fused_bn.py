"""Time the fused scaled BN (``kernels.ScaledBatchNormFn``) against its former backward, alternated in one process.

The former backward computed the op weight's gradient from three full-size tensor expressions (the scaled
upstream gradient, x-hat and their product); the current one is a single native BN backward with the weight
as gamma. Prints the median forward+backward time of each at a few fanned-out shapes, and their ratio.
Run: ``OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_fused_bn.py`` (nothing else running, ideally).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from pcdarts.nas.kernels import ScaledBatchNormFn, per_channel


class FormerScaledBatchNormFn(torch.autograd.Function):
    """The backward before 2026-12-05 (the same forward)."""

    @staticmethod
    def forward(ctx: Any, h, w, running_mean, running_var, momentum, eps):  # noqa: ANN001, ANN205
        y, mean, invstd = torch.native_batch_norm(h, None, None, running_mean, running_var, True, momentum, eps)
        ctx.save_for_backward(h, w, mean, invstd)
        ctx.eps = eps
        return y.mul_(per_channel(w))

    @staticmethod
    def backward(ctx: Any, grad):  # noqa: ANN001, ANN205
        h, w, mean, invstd = ctx.saved_tensors
        grad_h = torch.ops.aten.native_batch_norm_backward(
            grad * per_channel(w), h, None, None, None, mean, invstd, True, ctx.eps, [True, False, False]
        )[0]
        shape = (1, -1, 1, 1)
        prod = grad * ((h - mean.view(shape)) * invstd.view(shape))
        grad_w = (prod.sum() if w.dim() == 0 else prod.sum((0, 2, 3))).to(w.dtype)
        return grad_h, grad_w, None, None, None, None


def step(fn: Any, h: torch.Tensor, w: torch.Tensor) -> None:
    stats = torch.zeros(h.shape[1]), torch.ones(h.shape[1])
    out = fn.apply(h, w, *stats, 0.1, 1e-5)
    torch.autograd.grad(out, (h, w), torch.ones_like(out))


def main() -> None:
    load = open("/proc/loadavg").read().split()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load {load}")
    for shape, per_ch in (((32, 16, 16, 16), False), ((32, 64, 16, 16), True), ((64, 32, 32, 32), False)):
        h = torch.randn(*shape, requires_grad=True)
        w = torch.rand(shape[1] if per_ch else (), requires_grad=True)
        times: dict[str, list[float]] = {"former": [], "fused": []}
        for fn in (FormerScaledBatchNormFn, ScaledBatchNormFn):  # warm-up, not timed
            step(fn, h, w)
        for _ in range(25):
            for name, fn in (("former", FormerScaledBatchNormFn), ("fused", ScaledBatchNormFn)):
                t0 = time.perf_counter()
                step(fn, h, w)
                times[name].append(time.perf_counter() - t0)
        a, b = statistics.median(times["former"]), statistics.median(times["fused"])
        kind = "per-channel" if per_ch else "scalar"
        print(f"{tuple(shape)} {kind} weight: former {a * 1e3:.2f} ms, fused {b * 1e3:.2f} ms, {a / b:.2f}x")


if __name__ == "__main__":
    main()
