"""Where a search step's time goes, by kind of work: PyTorch's profiler over a few steps, each op's own time
(self time: its children excluded) put into one kind.

Kinds: dense and depthwise convolutions (by the weight's shape: one input channel a group is depthwise),
matrix products (the fan-out's batched 1x1 convolutions), batch norm (PyTorch's and the fused scaled BN),
pooling, ReLU, slicing/concatenation/shuffle (every op that only moves or views memory), softmax and mixing
(softmax and the element-wise sums and products outside the optimiser), the optimisers (everything run inside
an optimiser's step or zero_grad: SGD for the weights, Adam for alpha/beta), the autograd engine's own
bookkeeping, and the rest. ``outside ops`` is the profiled step's wall time less the ops' own time: Python and
dispatch between ops. The profiler adds its own cost to every op (a step runs about 1.5-2x slower under it),
so the shares, not the milliseconds, are the figure to read.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from .limit import search_step_fn

KINDS = (
    "dense conv",
    "depthwise conv",
    "matmul",
    "batch norm",
    "pooling",
    "relu",
    "slice/cat/shuffle",
    "softmax and mixing",
    "optimisers",
    "autograd engine",
    "other",
)

_CONV = ("conv", "mkldnn_convolution", "thnn_conv", "slow_conv")
_MATMUL = ("aten::mm", "aten::bmm", "aten::addmm", "aten::matmul", "aten::baddbmm", "aten::linear")
_BN = ("batch_norm", "ScaledBatchNorm")
_POOL = ("pool",)
_RELU = ("aten::relu", "aten::relu_", "aten::threshold_backward", "aten::clamp_min")
_MOVE = (
    "slice", "cat", "narrow", "index", "gather", "scatter", "chunk", "split", "stack", "view", "reshape",
    "permute", "transpose", "contiguous", "clone", "copy_", "expand", "repeat", "select", "unsqueeze", "squeeze",
    "as_strided", "flatten", "pad", "empty", "zeros", "ones", "fill_", "zero_", "detach", "alias", "lift",
    "channel_shuffle", "unbind", "t", "to", "_to_copy", "resize_", "new_", "unflatten", "movedim", "flip",
    "constant_pad_nd", "arange", "block_diag", "resolve_conj",
)  # fmt: skip
_MIX = ("softmax", "mul", "add", "sum", "div", "sub", "addcmul", "addcdiv", "neg", "sqrt", "exp", "mean", "where",
        "maximum", "pow", "linalg_vector_norm")  # fmt: skip


def _weight_shape(event: Any, backward: bool) -> list[int] | None:
    shapes = getattr(event, "input_shapes", None) or []
    i = 2 if backward else 1  # convolution(input, weight, ...), convolution_backward(grad, input, weight, ...)
    return shapes[i] if len(shapes) > i and len(shapes[i]) == 4 else None


def _under_optimiser(event: Any) -> bool:
    e = event.cpu_parent
    while e is not None:
        if e.name.startswith("Optimizer."):
            return True
        e = e.cpu_parent
    return False


def kind_of(event: Any) -> str:
    """The kind of work one profiler event does (its own time, not its children's)."""
    name = event.name
    if _under_optimiser(event) or name.startswith("Optimizer."):
        return "optimisers"
    if name.startswith("autograd::") or name.endswith("Backward0") or name.endswith("Backward1"):
        return "autograd engine"
    short = name.split("::")[-1]
    if "Depthwise" in name:  # the custom depthwise kernel (nas.kernels) and its backward
        return "depthwise conv"
    if "Pool" in name:  # the custom pooling kernels
        return "pooling"
    if any(c in name for c in _CONV):
        w = _weight_shape(event, "backward" in name)
        if w is None:  # a wrapper without shapes: glue of a convolution whose kind is not known here
            return "dense conv"
        return "depthwise conv" if w[1] == 1 and w[0] > 1 else "dense conv"
    if name.startswith(_MATMUL):
        return "matmul"
    if any(b in name for b in _BN):
        return "batch norm"
    if any(p in name for p in _POOL):
        return "pooling"
    if name.startswith(_RELU):
        return "relu"
    if short.lstrip("_").startswith(_MOVE) or short in _MOVE:
        return "slice/cat/shuffle"
    if short.lstrip("_").startswith(_MIX):
        return "softmax and mixing"
    return "other"


def profile_step(step: Any, steps: int, repeats: int) -> dict[str, Any]:
    """Median wall seconds of ``step`` (no profiler), then the profile of ``steps`` more, by kind."""
    step()  # warm-up: allocation, kernel choice
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        walls.append(time.perf_counter() - t0)
    wall = statistics.median(walls)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        profiled_wall = (time.perf_counter() - t0) / steps
    by_kind: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    top: dict[str, float] = defaultdict(float)
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CPU:
            continue
        k = kind_of(e)
        by_kind[k] += e.self_cpu_time_total / 1e6 / steps
        calls[k] += 1
        top[e.name] += e.self_cpu_time_total / 1e6 / steps
    total = sum(by_kind.values())
    rows = {k: {"seconds": by_kind.get(k, 0.0), "calls": calls.get(k, 0) // steps} for k in KINDS}
    for r in rows.values():
        r["share"] = r["seconds"] / total if total else 0.0
    heaviest = sorted(top.items(), key=lambda kv: -kv[1])[:12]
    return {
        "wall_seconds": wall,
        "profiled_seconds": total,  # the ops' own time under the profiler, a step
        "profiled_wall_seconds": profiled_wall,
        "outside_ops_share": max(0.0, 1 - total / profiled_wall),  # both under the profiler
        "calls_per_step": sum(calls.values()) // steps,
        "kinds": rows,
        "heaviest_ops": [{"op": n, "seconds": s} for n, s in heaviest],
    }


def profile_bench(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    step = search_step_fn(args, device)
    res = profile_step(step, steps=max(1, min(args.repeats, 3)), repeats=args.repeats)
    sizes = {name: getattr(args, name) for name in ("cell", "channels", "layers", "k", "batch", "size")}
    return {**res, "threads": torch.get_num_threads(), "device": str(device), "sizes": sizes}


def print_profile(res: dict[str, Any]) -> None:
    s = res["sizes"]
    print(
        f"search step, {s['cell']} cell, C={s['channels']}, {s['layers']} cells, K={s['k']}, batch {s['batch']}, "
        f"{s['size']} px, {res['threads']} thread(s) on {res['device']}: {res['wall_seconds']:.3f} s a step "
        f"(median, no profiler), {res['calls_per_step']:,} op calls"
    )
    print("| kind | share of the ops' time | ms a step (profiled) | calls a step |\n|---|---|---|---|")
    for k, r in sorted(res["kinds"].items(), key=lambda kv: -kv[1]["seconds"]):
        print(f"| {k} | {r['share']:.1%} | {r['seconds'] * 1e3:.1f} | {r['calls']:,} |")
    print(f"outside ops (Python, dispatch, allocation between ops): {res['outside_ops_share']:.0%} of the wall time")
    print("heaviest ops (own time, ms a step): " + ", ".join(
        f"{o['op']} {o['seconds'] * 1e3:.0f}" for o in res["heaviest_ops"][:8]))  # fmt: skip
