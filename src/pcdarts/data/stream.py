"""Batch streams: ``Stream`` (epochs, order, shards, resume) and ``BatchStream`` over on-device tensors.

Both the weight loader and the persistent validation iterator of the search
are ``BatchStream``s: the permutation, the position in it and the generator
states are part of ``state_dict()``, so a resumed run sees the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .augment import Augment

# The augmentation generator's seed: a prime stride keeps the streams of nearby seeds and ranks apart.
AUG_SEED_STRIDE, AUG_SEED_OFFSET = 7919, 17


class Stream:
    """Epoch bookkeeping shared by every stream: a permutation per epoch, a position in it, shards.

    Subclasses set ``n``, ``batch_size``, ``shuffle``, ``rank``, ``world_size`` and ``order_gen``
    and implement ``_batch``; ``_draw`` may add per-epoch draws after the permutation.
    """

    n: int
    batch_size: int
    shuffle: bool
    rank: int
    world_size: int
    order_gen: torch.Generator
    perm: torch.Tensor | None
    pos: int

    @property
    def shard_size(self) -> int:
        return self.n // self.world_size if self.world_size > 1 else self.n

    def __len__(self) -> int:
        return -(-self.shard_size // self.batch_size)

    def _new_epoch(self) -> None:
        perm = torch.randperm(self.n, generator=self.order_gen) if self.shuffle else torch.arange(self.n)
        self._draw()
        if self.world_size > 1:  # disjoint strided shards of equal size (the tail is dropped)
            perm = perm[: self.shard_size * self.world_size][self.rank :: self.world_size]
        self.perm, self.pos = perm, 0
        self._perm_on_device = None

    def reset(self) -> None:
        """Forget the current epoch: the next ``epoch()`` starts a fresh one (an evaluation pass reads it whole)."""
        self.perm, self.pos = None, 0
        self._perm_on_device = None

    def _draw(self) -> None:
        """Per-epoch random draws beyond the order (none by default)."""

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _finished(self) -> bool:
        return self.perm is None or self.pos >= len(self.perm)

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The rest of the current epoch (all of a new one when the last one finished)."""
        if self._finished():
            self._new_epoch()
        while self.pos < len(self.perm):
            yield self._batch()

    def remaining(self) -> int:
        if self._finished():
            return len(self)
        return -(-(len(self.perm) - self.pos) // self.batch_size)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch, wrapping into a new epoch as needed (the persistent val iterator)."""
        if self._finished():
            self._new_epoch()
        return self._batch()


class BatchStream(Stream):
    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        shuffle: bool = True,
        augment: Augment | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        if len(x) == 0:
            raise ValueError("cannot iterate an empty dataset")
        self.device = torch.device(device)
        self.x, self.y = x.to(self.device), y.to(self.device)
        self.n = len(self.x)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.rank, self.world_size = rank, world_size
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1)
        self.order_gen = torch.Generator().manual_seed(seed)  # same on every rank: shards must agree
        # augmentation draws on the data's device: no host-to-device copy (a sync on CUDA) per draw; on CPU
        # this is the generator it always was
        self.aug_gen = torch.Generator(device=self.device).manual_seed(seed * AUG_SEED_STRIDE + AUG_SEED_OFFSET + rank)
        self.perm: torch.Tensor | None = None
        self._perm_on_device: torch.Tensor | None = None
        self.pos = 0

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._perm_on_device is None or self._perm_on_device.shape != self.perm.shape:
            self._perm_on_device = self.perm.to(self.device)  # once an epoch, not once a batch
        idx = self._perm_on_device[self.pos : self.pos + self.batch_size]
        self.pos += len(idx)
        x = self.x[idx]
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        if self.augment is not None:
            x = self.augment(x, self.aug_gen)
        x = (x - self.mean) / self.std
        if self.augment is not None:
            x = self.augment.after_normalise(x, self.aug_gen)
        return x, self.y[idx]

    def state_dict(self) -> dict[str, Any]:
        return {
            "order_gen": self.order_gen.get_state(),
            "aug_gen": self.aug_gen.get_state(),
            "perm": self.perm,
            "pos": self.pos,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order_gen.set_state(state["order_gen"])
        self.aug_gen.set_state(state["aug_gen"])
        self.perm, self.pos = state["perm"], int(state["pos"])
        self._perm_on_device = None
