"""Datasets as tensors: a train split, a held-out test split, and how to normalise them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from ..errors import PCDartsError


class DataError(PCDartsError, ValueError):
    """Data that cannot be used: missing path, corrupt file, unknown dataset."""


@dataclass
class TensorDataset:
    """Images as (N, C, H, W) uint8 or float-in-[0,1] tensors plus integer labels."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: list[str] = field(default_factory=list)
    crop_padding: int = 4
    flip: bool = True
    selection: Any = None  # (x, y) of the train images set aside for model selection (``--holdout-images``)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def train_size(self) -> int:
        return len(self.train_x)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_x.shape[2]), int(self.train_x.shape[3])

    def class_names(self) -> list[str]:
        return self.classes or [str(i) for i in range(self.num_classes)]


class Dataset(Protocol):
    """What every dataset says about itself (``TensorDataset``, ``FolderDataset``): callers need no more."""

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int  # the dataset's default random-crop padding
    flip: bool  # the dataset's default for random horizontal flips

    @property
    def num_classes(self) -> int: ...

    @property
    def in_channels(self) -> int: ...

    @property
    def image_size(self) -> tuple[int, int]: ...

    @property
    def train_size(self) -> int: ...

    def class_names(self) -> list[str]: ...


@dataclass(frozen=True)
class Shape:
    """A dataset's images as its loader gives them, known without reading them (for plans and ``info``)."""

    channels: int
    side: int  # the loader's own side; a run's --image-size replaces it
    classes: int
    train_images: int | None  # None: counted only by reading the data (an image folder)


SHAPES: dict[str, Shape] = {
    "cifar10": Shape(3, 32, 10, 50_000),
    "cifar100": Shape(3, 32, 100, 50_000),
    "imagenet": Shape(3, 224, 1000, 1_281_167),
    "fashion-mnist": Shape(1, 28, 10, 60_000),
    "mnist": Shape(1, 28, 10, 60_000),
    "digits": Shape(1, 16, 10, 1_437),
    "synthetic": Shape(3, 32, 10, 512),
    "folder": Shape(3, 64, 3, None),  # its own side up to 64 px; 3 classes stands in for an unseen folder
}


DatasetFactory = Callable[..., TensorDataset]
DATASETS: dict[str, DatasetFactory] = {}


def register_dataset(name: str) -> Callable[[DatasetFactory], DatasetFactory]:
    def wrap(fn: DatasetFactory) -> DatasetFactory:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        DATASETS[name] = fn
        return fn

    return wrap


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    xf = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    mean = xf.mean(dim=(0, 2, 3))
    std = xf.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


@register_dataset("digits")
def load_digits(*, image_size: int = 16, test_fraction: float = 0.2, **_: Any) -> TensorDataset:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, offline), upscaled.

    Fixed stratified split (``random_state=0``) so every run and paper table uses
    the same held-out images. Flips are off: a mirrored digit is another glyph.
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    if image_size != 8:
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = images.clamp(0, 1)
    labels = torch.tensor(bunch.target, dtype=torch.long)
    idx = torch.arange(len(labels)).numpy()
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=0, stratify=labels.numpy())
    tr, te = torch.as_tensor(tr), torch.as_tensor(te)
    mean, std = channel_stats(images[tr])
    return TensorDataset(
        "digits",
        images[tr],
        labels[tr],
        images[te],
        labels[te],
        10,
        mean,
        std,
        [str(i) for i in range(10)],
        crop_padding=2,
        flip=False,
    )


@register_dataset("synthetic")
def load_synthetic(
    *,
    image_size: int = 32,
    in_channels: int = 3,
    num_classes: int = 10,
    train_size: int = 512,
    test_size: int = 128,
    seed: int = 0,
    **_: Any,
) -> TensorDataset:
    """Random images with a learnable class-dependent pattern, of any shape (benchmarks, tests)."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(num_classes, in_channels, image_size, image_size, generator=g)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, num_classes, (n,), generator=g)
        noise = torch.rand(n, in_channels, image_size, image_size, generator=g)
        return (0.6 * protos[y] + 0.4 * noise).clamp(0, 1), y

    trx, try_ = make(train_size)
    tex, tey = make(test_size)
    return TensorDataset("synthetic", trx, try_, tex, tey, num_classes, (0.5,) * in_channels, (0.25,) * in_channels)


def get_dataset(name: str, **kwargs: Any) -> TensorDataset:
    """Load a registered dataset by name."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](**kwargs)
