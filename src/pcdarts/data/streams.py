"""One way to get batches from any dataset kind: tensors on the device, or image files."""

from __future__ import annotations

import random
from typing import Any

import torch

from .augment import Augment
from .datasets import DataError, TensorDataset
from .folder import FolderDataset, FolderStream
from .loader import BatchStream

Part = Any  # (x, y) tensors for a TensorDataset, a list of (path, label) for a FolderDataset


def search_parts(ds: TensorDataset | FolderDataset, portion: float) -> tuple[Part, Part]:
    """The weight and the arch share of the train split (PC-DARTS: first and second half)."""
    if isinstance(ds, TensorDataset):
        s = int(len(ds.train_x) * portion)
        return (ds.train_x[:s], ds.train_y[:s]), (ds.train_x[s:], ds.train_y[s:])
    if "subset" in ds.extra:  # the paper's ImageNet per-class subsets
        return ds.extra["subset"]["weights"], ds.extra["subset"]["arch"]
    items = list(ds.train)
    random.Random(0).shuffle(items)  # folders are sorted by class: mix before halving
    s = int(len(items) * portion)
    return items[:s], items[s:]


def train_part(ds: TensorDataset | FolderDataset) -> Part:
    return (ds.train_x, ds.train_y) if isinstance(ds, TensorDataset) else ds.train


def holdout_part(ds: TensorDataset | FolderDataset) -> Part:
    return (ds.test_x, ds.test_y) if isinstance(ds, TensorDataset) else ds.test


def part_size(part: Part) -> int:
    return len(part[0]) if isinstance(part, tuple) else len(part)


def make_stream(
    ds: TensorDataset | FolderDataset, part: Part, batch_size: int, *, train: bool, seed: int = 0,
    device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1, augment: Augment | None = None,
    workers: int = 2, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
) -> BatchStream | FolderStream:
    mean = mean or ds.mean
    std = std or ds.std
    if part_size(part) == 0:
        raise DataError(f"the {ds.name} split is empty")
    if isinstance(part, tuple):
        return BatchStream(part[0], part[1], batch_size, mean=mean, std=std, shuffle=train, seed=seed, device=device,
                           rank=rank, world_size=world_size, augment=augment if train else None)
    return FolderStream(part, batch_size, side=ds.image_size[0], channels=ds.in_channels, mean=mean, std=std,
                        train=train, shuffle=train, seed=seed, device=device, rank=rank, world_size=world_size,
                        workers=workers)
