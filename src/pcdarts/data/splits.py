"""One way to get batches from any dataset kind: tensors on the device, or image files."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import torch

from .augment import Augment
from .datasets import DataError, TensorDataset
from .folder import FolderDataset, FolderStream
from .stream import BatchStream

Part = Any  # (x, y) tensors for a TensorDataset, a list of (path, label) for a FolderDataset


def search_parts(ds: TensorDataset | FolderDataset, portion: float, seed: int = 0) -> tuple[Part, Part]:
    """The weight and the arch share of the train split (PC-DARTS: first and second half).

    Image folders list files class by class, so they are shuffled with ``seed`` before the split.
    """
    if isinstance(ds, TensorDataset):
        s = int(len(ds.train_x) * portion)
        return (ds.train_x[:s], ds.train_y[:s]), (ds.train_x[s:], ds.train_y[s:])
    if "subset" in ds.extra:  # the paper's ImageNet per-class subsets
        return ds.extra["subset"]["weights"], ds.extra["subset"]["arch"]
    items = list(ds.train)
    random.Random(seed).shuffle(items)
    s = int(len(items) * portion)
    return items[:s], items[s:]


def train_part(ds: TensorDataset | FolderDataset) -> Part:
    return (ds.train_x, ds.train_y) if isinstance(ds, TensorDataset) else ds.train


def final_test_part(ds: TensorDataset | FolderDataset) -> Part:
    """The test split (read once, for the reported figure); the selecting hold-out is ``selection_part``."""
    return (ds.test_x, ds.test_y) if isinstance(ds, TensorDataset) else ds.test


def part_labels(part: Part) -> list[int]:
    return part[1].tolist() if isinstance(part, tuple) else [label for _, label in part]


def _take(part: Part, idx: Any) -> Part:
    if isinstance(part, tuple):
        idx = torch.as_tensor(idx, dtype=torch.long)
        return part[0][idx], part[1][idx]
    return [part[int(i)] for i in idx]


def stratified_split(part: Part, held: int | float, *, seed: int = 0, what: str = "split") -> tuple[Part, Part]:
    """A fixed per-class split: (rest, held-out), ``held`` an image count or a fraction.

    The seed is fixed (0) by default so every run and every arm of a study sees the same images.
    """
    from sklearn.model_selection import train_test_split

    labels = part_labels(part)
    n = len(labels)
    count = held if isinstance(held, int) else max(round(n * held), len(set(labels)))  # one image per class at least
    if not 0 < count < n:
        raise DataError(f"cannot hold out {count} of {n} images for the {what}: choose a size between 1 and {n - 1}")
    try:
        rest, out = train_test_split(list(range(n)), test_size=count, random_state=seed, stratify=labels)
    except ValueError as exc:
        raise DataError(f"cannot make a per-class {what} of {count} from {n} images ({exc})") from None
    return _take(part, rest), _take(part, out)


def limit_train(ds: TensorDataset | FolderDataset, n: int) -> TensorDataset | FolderDataset:
    """The dataset with its train split cut to a fixed per-class subset of ``n`` images (0: unchanged)."""
    if n <= 0:
        return ds
    part = train_part(ds)
    if n >= part_size(part):
        return ds
    _, kept = stratified_split(part, n, what="train subset")
    if isinstance(ds, TensorDataset):
        return replace(ds, train_x=kept[0], train_y=kept[1])
    return replace(ds, train=kept)


def carve_selection(ds: TensorDataset | FolderDataset, n: int) -> TensorDataset | FolderDataset:
    """Set ``n`` train images aside, per class and fixed, for model selection (0: unchanged).

    Carved before ``--train-images`` draws its subset, so the hold-out is disjoint from every image a
    search or a training learns from, and the same for every run with the same ``n``.
    """
    if n <= 0:
        return ds
    rest, held = stratified_split(train_part(ds), n, what="hold-out")
    if isinstance(ds, TensorDataset):
        return replace(ds, train_x=rest[0], train_y=rest[1], selection=held)
    return replace(ds, train=rest, extra={**ds.extra, "selection": held})


def selection_part(ds: TensorDataset | FolderDataset) -> Part | None:
    """The hold-out ``carve_selection`` set aside, or None."""
    return ds.selection if isinstance(ds, TensorDataset) else ds.extra.get("selection")


def part_size(part: Part) -> int:
    return len(part[0]) if isinstance(part, tuple) else len(part)


def make_stream(
    ds: TensorDataset | FolderDataset,
    part: Part,
    batch_size: int,
    *,
    train: bool,
    seed: int = 0,
    device: torch.device | str = "cpu",
    rank: int = 0,
    world_size: int = 1,
    augment: Augment | None = None,
    workers: int = 2,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    jitter: bool = True,
) -> BatchStream | FolderStream:
    mean = mean or ds.mean
    std = std or ds.std
    if part_size(part) == 0:
        raise DataError(f"the {ds.name} split is empty")
    if isinstance(part, tuple):
        return BatchStream(
            part[0],
            part[1],
            batch_size,
            mean=mean,
            std=std,
            shuffle=train,
            seed=seed,
            device=device,
            rank=rank,
            world_size=world_size,
            augment=augment if train else None,
        )
    return FolderStream(
        part,
        batch_size,
        side=ds.image_size[0],
        channels=ds.in_channels,
        mean=mean,
        std=std,
        train=train,
        shuffle=train,
        seed=seed,
        device=device,
        rank=rank,
        world_size=world_size,
        workers=workers,
        jitter=jitter,
        augment=augment if train else None,
    )
