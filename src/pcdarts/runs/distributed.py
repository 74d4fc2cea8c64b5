"""torchrun support: process group from the environment, DDP wrapping, agreement checks.

Semantics: ``batch_size`` is the global batch; each of the N ranks takes
``batch_size // N`` images from its own disjoint shard. Learning rates are
those of the global batch, so a paper preset means the same on 1 or N devices.
BatchNorm statistics stay per rank (as DDP does by default, and as the
reference multi-GPU code does); buffers are broadcast from rank 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op when run alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local)


def local_device(device: torch.device, info: DistInfo) -> torch.device:
    if device.type == "cuda" and info.enabled:
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    if device.type == "cuda" and device.index is not None:  # --device cuda:1: kernels and streams go there too
        torch.cuda.set_device(device)
    return device


def wrap_ddp(model: nn.Module, device: torch.device, info: DistInfo, ignore: list[str] | None = None) -> nn.Module:
    """DistributedDataParallel over the weights; ``ignore`` names parameters reduced by hand (alpha/beta)."""
    if not info.enabled:
        return model
    if ignore:
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, ignore)
    ids = [device.index] if device.type == "cuda" else None
    # broadcast_buffers=False: each rank keeps its own BN statistics (as in the official multi-GPU code), and
    # no 2,787 buffers go over the wire before every forward
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)


def check_agreement(tensors: list[torch.Tensor], info: DistInfo, what: str = "alpha/beta") -> float:
    """Max absolute difference to rank 0 across ranks; raises when ranks disagree."""
    if not info.enabled:
        return 0.0
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max()
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    if float(diff) != 0.0:
        raise RuntimeError(f"{what} differ across ranks (max |diff| = {float(diff):.3g}): the search is not in sync")
    return float(diff)


def all_reduce_sums(acc: dict[str, torch.Tensor], info: DistInfo) -> dict[str, torch.Tensor]:
    """Summed metrics over all ranks (a copy; the local accumulators are left as they are)."""
    if not info.enabled:
        return acc
    out = {k: v.clone() for k, v in acc.items()}
    for v in out.values():
        dist.all_reduce(v)
    if "steps" in out:
        out["steps"] /= info.world_size
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
