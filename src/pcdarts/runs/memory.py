"""Memory planning: predicted peak memory of a search step per K, and the largest batch that fits.

The prediction counts what a step must hold: weights, their gradients and
momentum (3 x 4 bytes per weight), and the activations autograd saves for the
backward pass, measured exactly at a small batch with saved-tensor hooks and
scaled linearly in the batch size. With recomputation (activation
checkpointing) a step holds what the checkpoints keep plus, during the
backward pass, the activations of the largest recomputed segment (one cell
or the edges leaving one state). Measured peaks run 1.1-1.5x above the saved
activations (temporaries of the backward pass), so ``auto_batch_size`` keeps
a safety margin of 2x on top.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nas.fanout import FanOut
from ..nas.nb201_search import NB201SearchCell
from ..nas.supernet import MixedOp, SearchCell, SearchNetwork
from .config import SearchConfig, build_search_network, check_shape

PROBE_BATCH = 4
SAFETY = 2.0
PLAN_BUDGET_BYTES = 24 * 2**30  # the memory of the project's CI machine, for "the batch that fits" tables


def saved_activation_bytes(net: SearchNetwork, x: torch.Tensor, y: torch.Tensor) -> int:
    """Bytes autograd keeps for backward in one forward (distinct storages counted once)."""
    return sum(_saved_storages(net, x, y).values())


def _saved_storages(
    net: SearchNetwork, x: torch.Tensor, y: torch.Tensor, segment: Callable[[], Any] | None = None
) -> dict[Any, int]:
    """Bytes per saved storage; keyed by ``(segment(), pointer)`` when ``segment`` names where the forward is."""
    seen: dict[Any, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            st = t.untyped_storage()
            key = st.data_ptr() if segment is None else (segment(), st.data_ptr())
            seen[key] = st.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(net(x), y)
    del loss
    return seen


def saved_bytes_by_module(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, int]:
    """Saved bytes per place in the network: the innermost module types (up to three deep) that saved them.

    Each storage counts once, in the module whose forward saved it first: where a search step's memory goes.
    """
    stack: list[str] = []
    handles = []
    for m in net.modules():
        name = type(m).__name__
        handles.append(m.register_forward_pre_hook(lambda mod, args, name=name: stack.append(name)))
        handles.append(m.register_forward_hook(lambda mod, args, out: stack.pop() and None))  # None: output kept
    try:
        seen = _saved_storages(net, x, y, segment=lambda: " > ".join(stack[-3:]))
    finally:
        for h in handles:
            h.remove()
    first: dict[int, tuple[str, int]] = {}
    for (where, ptr), n in seen.items():
        first.setdefault(ptr, (where, n))
    out: dict[str, int] = {}
    for where, n in first.values():
        out[where] = out.get(where, 0) + n
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


SEGMENTS: dict[str, tuple[type[nn.Module], ...]] = {
    "cells": (SearchCell, NB201SearchCell),  # a whole cell, in either cell space
    "edges": (FanOut, MixedOp),  # the edges leaving one state when fanned out, else one edge's mixed op
}
"""What each recompute mode recomputes in the backward pass: the modules whose forward is one segment."""


def largest_segment_bytes(net: nn.Module, x: torch.Tensor, y: torch.Tensor, recompute: str) -> int:
    """Saved bytes of the largest recomputed segment (``SEGMENTS[recompute]``); 0 without recompute.

    Measured with everything kept, each storage counted in the outermost segment whose forward saved it.
    """
    if recompute == "none":
        return 0
    where: list[Any] = [-1, None]  # the segment running now, and the module that opened it

    def enter(mod: nn.Module, i: int) -> None:
        if where[1] is None:
            where[0], where[1] = i, mod

    def leave(mod: nn.Module) -> None:
        if where[1] is mod:
            where[0], where[1] = -1, None

    handles = []
    for i, m in enumerate(m for m in net.modules() if isinstance(m, SEGMENTS[recompute])):
        handles.append(m.register_forward_pre_hook(lambda mod, args, i=i: enter(mod, i)))
        handles.append(m.register_forward_hook(lambda mod, args, out: leave(mod)))
    mode = net.recompute
    net.recompute = "none"
    try:
        seen = _saved_storages(net, x, y, segment=lambda: where[0])
    finally:
        net.recompute = mode
        for h in handles:
            h.remove()
    per: dict[int, int] = {}
    for (seg, _), n in seen.items():
        if seg >= 0:
            per[seg] = per.get(seg, 0) + n
    return max(per.values(), default=0)


def _supernet(cfg: SearchConfig, num_classes: int, in_channels: int) -> nn.Module:
    """The supernet of ``cfg``'s cell space (the DARTS cell's or NAS-Bench-201's)."""
    return build_search_network(cfg, num_classes=num_classes, in_channels=in_channels)


def predict_peak(
    cfg: SearchConfig, *, batch: int, in_channels: int, size: int, num_classes: int, device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Predicted bytes of one search step of ``cfg``'s supernet at ``batch`` (activations measured at a probe
    batch, scaled).

    Runs under a forked RNG, so the caller's random state is left as it was.
    """
    check_shape(init_channels=cfg.init_channels, layers=cfg.layers, num_classes=num_classes, batch=batch, size=size,
                in_channels=in_channels)  # fmt: skip
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(0)
        net = _supernet(cfg, num_classes, in_channels).to(dev)
        probe = min(batch, PROBE_BATCH)
        x = torch.randn(probe, in_channels, size, size, device=dev)
        y = torch.randint(0, num_classes, (probe,), device=dev)
        kept = saved_activation_bytes(net, x, y) + largest_segment_bytes(net, x, y, cfg.recompute)
        per_sample = kept / probe
    params = sum(p.numel() for p in net.parameters()) * 4
    return {
        "k": cfg.k,
        "recompute": cfg.recompute,
        "batch": batch,
        "activations_bytes": per_sample * batch,
        "per_sample_bytes": per_sample,
        "state_bytes": 3 * params,
        "predicted_peak_bytes": per_sample * batch + 3 * params,
    }


def available_bytes(device: torch.device) -> int:
    """Free memory of the device: CUDA's free memory, or MemAvailable of the host."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def auto_batch_size(
    cfg: SearchConfig,
    *,
    in_channels: int,
    size: int,
    num_classes: int,
    device: torch.device,
    multiple: int = 8,
    cap: int = 4096,
    budget_bytes: int | None = None,
    safety: float = SAFETY,
) -> tuple[int, dict[str, Any]]:
    """The largest batch (a multiple of ``multiple``) whose predicted peak, with the margin, fits.

    ``budget_bytes``: plan for that much memory instead of what the device has free now (no CUDA probe).
    """
    shape = dict(in_channels=in_channels, size=size, num_classes=num_classes)
    info = predict_peak(cfg, batch=PROBE_BATCH, device=device, **shape)
    available = available_bytes(device) if budget_bytes is None else budget_bytes
    budget = available / safety - info["state_bytes"]
    batch = int(budget // max(info["per_sample_bytes"], 1))
    batch = max(multiple, min(cap, batch - batch % multiple))
    if device.type == "cuda" and budget_bytes is None:  # confirm by running a step; back off on OOM
        batch = _confirm_cuda(cfg, batch, device=device, multiple=multiple, **shape)
    return batch, {**info, "available_bytes": available, "safety": safety}


_OOM_MARKERS = ("out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED")


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the RuntimeError cuBLAS / cuDNN raise when their workspace does not fit."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and any(m in str(exc) for m in _OOM_MARKERS)
    )


def _confirm_cuda(
    cfg: SearchConfig,
    batch: int,
    *,
    in_channels: int,
    size: int,
    num_classes: int,
    device: torch.device,
    multiple: int,
) -> int:  # pragma: no cover - needs a GPU
    """Run whole search steps at ``batch`` as the run will (arch step, weight step, optimiser state, the run's
    precision); back off by a fifth on running out of memory, however cuBLAS or cuDNN report it."""
    from ..nas.architect import Architect
    from .engine import search_step, sgd_impl

    net = _supernet(cfg, num_classes, in_channels).to(device)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=cfg.lr, momentum=cfg.momentum, **sgd_impl(device))
    architect = Architect(net, lr=cfg.arch_lr, unrolled=cfg.unrolled)
    while batch > multiple:
        try:
            torch.cuda.reset_peak_memory_stats(device)
            x = torch.randn(batch, in_channels, size, size, device=device)
            y = torch.randint(0, num_classes, (batch,), device=device)
            for _ in range(2):  # the second step holds the optimisers' state as every later step does
                search_step(net, net, architect, w_opt, x, y, (x, y), grad_clip=cfg.grad_clip, precision=cfg.precision)
            torch.cuda.synchronize(device)
            return batch
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                raise
            net.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            batch = max(multiple, int(batch * 0.8) // multiple * multiple)
    return batch


def memory_plan(
    cfg: SearchConfig, ks: Sequence[int], *, in_channels: int = 3, size: int = 32, num_classes: int = 10
) -> list[dict[str, Any]]:
    """``predict_peak`` of ``cfg`` at its batch for each K of ``ks`` that divides its init channels (the others
    are left out), each row with the input it assumed; a K below 1, or no K that divides, is a ConfigError. The
    shape defaults to CIFAR's."""
    check_shape(init_channels=cfg.init_channels, layers=cfg.layers, num_classes=num_classes, batch=cfg.batch_size,
                size=size, in_channels=in_channels)  # fmt: skip
    if any(k < 1 for k in ks):
        raise ConfigError(f"every K must be >= 1; not {[k for k in ks if k < 1]}")
    fit = [k for k in ks if cfg.init_channels % k == 0]
    if not fit:
        raise ConfigError(f"no K of {list(ks)} divides the init channels {cfg.init_channels}: choose --ks that do")
    return [
        {**predict_peak(replace(cfg, k=k), batch=cfg.batch_size, in_channels=in_channels, size=size,
                        num_classes=num_classes), "input": [in_channels, size, size], "num_classes": num_classes}
        for k in fit
    ]  # fmt: skip
