"""Memory planning: predicted peak memory of a search step per K, and the largest batch that fits.

The prediction counts what a step must hold: weights, their gradients and
momentum (3 x 4 bytes per weight), and the activations autograd saves for the
backward pass, measured exactly at a small batch with saved-tensor hooks and
scaled linearly in the batch size. Measured peaks run 1.1-1.5x above the
saved activations (temporaries of the backward pass), so ``auto_batch_size``
keeps a safety margin of 2x on top.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F

from .supernet import SearchNetwork

PROBE_BATCH = 4
SAFETY = 2.0


def saved_activation_bytes(net: SearchNetwork, x: torch.Tensor, y: torch.Tensor) -> int:
    """Bytes autograd keeps for backward in one forward (distinct storages counted once)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(net(x), y)
    del loss
    return sum(seen.values())


def predict_peak(
    *,
    k: int,
    batch: int,
    init_channels: int,
    layers: int,
    in_channels: int,
    size: int,
    num_classes: int,
    stem: str = "cifar",
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Predicted bytes of one search step at ``batch`` (activations measured at a probe batch, scaled).

    Runs under a forked RNG, so the caller's random state is left as it was.
    """
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(0)
        net = SearchNetwork(
            num_classes=num_classes, in_channels=in_channels, init_channels=init_channels, layers=layers, k=k, stem=stem
        ).to(dev)
        probe = min(batch, PROBE_BATCH)
        x = torch.randn(probe, in_channels, size, size, device=dev)
        y = torch.randint(0, num_classes, (probe,), device=dev)
        per_sample = saved_activation_bytes(net, x, y) / probe
    params = sum(p.numel() for p in net.parameters()) * 4
    return {
        "k": k,
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
    *,
    k: int,
    init_channels: int,
    layers: int,
    in_channels: int,
    size: int,
    num_classes: int,
    device: torch.device,
    stem: str = "cifar",
    multiple: int = 8,
    cap: int = 4096,
) -> tuple[int, dict[str, Any]]:
    """The largest batch (a multiple of ``multiple``) whose predicted peak, with the margin, fits."""
    info = predict_peak(
        k=k,
        batch=PROBE_BATCH,
        init_channels=init_channels,
        layers=layers,
        in_channels=in_channels,
        size=size,
        num_classes=num_classes,
        stem=stem,
        device=device,
    )
    budget = available_bytes(device) / SAFETY - info["state_bytes"]
    batch = int(budget // max(info["per_sample_bytes"], 1))
    batch = max(multiple, min(cap, batch - batch % multiple))
    if device.type == "cuda":  # confirm by running a step; back off on OOM
        batch = _confirm_cuda(batch, k, init_channels, layers, in_channels, size, num_classes, stem, device, multiple)
    return batch, {**info, "available_bytes": available_bytes(device), "safety": SAFETY}


def _confirm_cuda(
    batch: int,
    k: int,
    c: int,
    layers: int,
    cin: int,
    size: int,
    classes: int,
    stem: str,
    device: torch.device,
    multiple: int,
) -> int:  # pragma: no cover - needs a GPU
    import torch.nn.functional as F

    net = SearchNetwork(num_classes=classes, in_channels=cin, init_channels=c, layers=layers, k=k, stem=stem).to(device)
    while batch > multiple:
        try:
            x = torch.randn(batch, cin, size, size, device=device)
            y = torch.randint(0, classes, (batch,), device=device)
            F.cross_entropy(net(x), y).backward()
            net.zero_grad(set_to_none=True)
            return batch
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            batch = max(multiple, int(batch * 0.8) // multiple * multiple)
    return batch
