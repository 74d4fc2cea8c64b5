"""Image folders (ImageNet layout or any class-per-folder tree), decoded by Pillow in DataLoader workers.

Training images get RandomResizedCrop, a horizontal flip and colour jitter;
evaluation images a resize and centre crop (the usual 256 -> 224 ratio).
Every random choice is drawn from a per-image seed fixed by the stream's
generator, so a run is reproducible whatever the number of workers.
A file Pillow cannot decode stops the run with an error naming it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import first_line
from ..files import read_run_json
from .datasets import DataError, register_dataset
from .images import centre_crop, decode, jitter, random_resized_crop
from .stream import Stream

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def scan_folder(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted sub-folders) and (path, label) pairs of every image file.

    At least two classes, and no class without images: a one-class "dataset" trains to 100 %
    and an empty class is a label no image carries.
    """
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class sub-folders: expected {root}/<class>/<image>")
    items = []
    for label, c in enumerate(classes):
        found = [p for p in sorted((root / c).rglob("*")) if p.suffix.lower() in IMAGE_EXTS and not p.is_dir()]
        odd = next((p for p in found if not p.is_file()), None)
        if odd is not None:  # a FIFO or device named like an image would block or mislead a reader
            raise DataError(f"{odd} is not a regular file (a FIFO or device): remove it from the image folder")
        mine = [(str(p), label) for p in found]
        if not mine:
            raise DataError(
                f"class folder {root / c} holds no images ({', '.join(sorted(IMAGE_EXTS))}): add images or remove it"
            )
        items += mine
    if len(classes) < 2:
        raise DataError(
            f"{root} has one class sub-folder ({classes[0]}); a classifier needs at least two: "
            f"expected {root}/<class>/<image> with two or more classes"
        )
    return classes, items


@dataclass
class FolderDataset:
    """Train/test file lists plus what the network needs to know about them."""

    name: str
    train: list[tuple[str, int]]
    test: list[tuple[str, int]]
    classes: list[str]
    image_side: int = 224
    in_channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    extra: dict[str, Any] = field(default_factory=dict)
    crop_padding: int = 4
    flip: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def train_size(self) -> int:
        return len(self.train)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.image_side, self.image_side

    def class_names(self) -> list[str]:
        return self.classes


class _Images(Dataset):
    """Image files decoded and augmented one by one (in DataLoader workers), each with its own seed.

    Training augmentation for folders: a random-resized crop (8-100 % of the area; ``crop=False``: the
    evaluation's resize and centre crop instead), a horizontal flip (``flip``), colour jitter (``jitter``:
    final training only) and cutout (``cutout`` pixels, 0 off).
    """

    def __init__(
        self,
        items: list[tuple[str, int]],
        side: int,
        channels: int,
        train: bool,
        jitter: bool = True,
        *,
        crop: bool = True,
        flip: bool = True,
        cutout: int = 0,
    ):
        self.items, self.side, self.channels, self.train, self.jitter = items, side, channels, train, jitter
        self.crop, self.flip, self.cutout = crop, flip, cutout

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key
        path, label = self.items[index]
        im = decode(path, self.channels)
        if self.train:
            rng = random.Random(seed)
            im = random_resized_crop(im, self.side, rng) if self.crop else centre_crop(im, self.side)
            arr = np.asarray(im, dtype=np.float32) / 255.0
            if rng.random() < 0.5 and self.flip:
                arr = arr[:, ::-1]
            if self.jitter:  # final training only: the official search uses crop + flip alone
                arr = jitter(arr, rng)
            if self.cutout > 0:
                arr = np.array(arr)  # writable
                cy, cx, half = rng.randrange(arr.shape[0]), rng.randrange(arr.shape[1]), self.cutout // 2
                arr[max(cy - half, 0) : cy + half, max(cx - half, 0) : cx + half] = 0.0
        else:
            arr = np.asarray(centre_crop(im, self.side), dtype=np.float32) / 255.0
        t = torch.from_numpy(np.ascontiguousarray(arr))
        return (t[None] if t.dim() == 2 else t.permute(2, 0, 1)), label


class FolderStream(Stream):
    """The ``BatchStream`` interface over files: epochs, a wrapping ``next_batch``, resumable state."""

    def __init__(
        self,
        items: list[tuple[str, int]],
        batch_size: int,
        *,
        side: int,
        channels: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        train: bool,
        shuffle: bool = True,
        seed: int = 0,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
        workers: int = 2,
        jitter: bool = True,
        augment: Any = None,
    ):
        if not items:
            raise DataError("cannot iterate an empty image list")
        self.items, self.batch_size, self.shuffle, self.train = items, batch_size, shuffle, train
        self.n = len(items)
        self.device = torch.device(device)
        self.rank, self.world_size, self.workers = rank, world_size, workers
        crop = augment is None or augment.crop_padding != 0
        flip = augment is None or augment.flip
        cut = 0 if augment is None else augment.cutout
        self.dataset = _Images(items, side, channels, train, jitter, crop=crop, flip=flip, cutout=cut)
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1)
        self.order_gen = torch.Generator().manual_seed(seed)
        self.perm: torch.Tensor | None = None
        self.seeds: torch.Tensor | None = None
        self.pos = 0
        self._iter: Iterator | None = None

    def _draw(self) -> None:
        self.seeds = torch.randint(0, 2**31 - 1, (self.n,), generator=self.order_gen)
        self._iter = None

    def _loader(self) -> Iterator:
        assert self.perm is not None and self.seeds is not None
        keys = [(int(i), int(self.seeds[i])) for i in self.perm[self.pos :]]
        batches = [keys[i : i + self.batch_size] for i in range(0, len(keys), self.batch_size)]
        return iter(
            DataLoader(
                self.dataset,
                batch_sampler=batches,
                num_workers=self.workers,
                persistent_workers=False,
                pin_memory=self.device.type == "cuda",
            )
        )

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._iter is None:
            self._iter = self._loader()
        try:
            x, y = next(self._iter)
        except StopIteration:
            raise
        except Exception as exc:  # a worker's DataError arrives wrapped; keep its one line
            lines = [ln for ln in str(exc).splitlines() if "DataError: " in ln]  # the worker's own one line
            raise DataError(lines[-1].split("DataError: ")[-1] if lines else first_line(exc)) from None
        self.pos += len(y)
        x = x.to(self.device, non_blocking=True)
        return (x - self.mean) / self.std, y.to(self.device, non_blocking=True)

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        yield from super().epoch()
        self._iter = None

    def reset(self) -> None:
        super().reset()
        self._iter = None

    def state_dict(self) -> dict[str, Any]:
        return {"order_gen": self.order_gen.get_state(), "perm": self.perm, "seeds": self.seeds, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order_gen.set_state(state["order_gen"])
        self.perm, self.seeds, self.pos, self._iter = state["perm"], state["seeds"], int(state["pos"]), None


def split_folder(root: Path) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, int]]]:
    """The layouts people have: ``train/`` + ``val/`` (or ``test/``); ``train/`` alone; or class folders.

    Without a held-out folder, a fixed 80/20 per-class split of the images is the test split.
    """
    base = root
    for test_name in ("val", "test"):
        if (root / "train").is_dir() and (root / test_name).is_dir():
            classes, train = scan_folder(root / "train")
            test_classes, test = scan_folder(root / test_name)
            index = {c: i for i, c in enumerate(classes)}
            unknown = sorted(set(test_classes) - set(classes))
            if unknown:
                raise DataError(f"{root / test_name} has classes missing from train: {', '.join(unknown[:5])}")
            test = [(p, index[test_classes[y]]) for p, y in test]
            return classes, train, test
    subdirs = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if "train" in subdirs and subdirs <= {"train", "val", "test"}:
        base = root / "train"  # train/ alone: its sub-folders are the classes
    classes, items = scan_folder(base)
    rng = random.Random(0)  # fixed: every run and every seed holds out the same images
    train, test = [], []
    for label in range(len(classes)):
        mine = [it for it in items if it[1] == label]
        rng.shuffle(mine)
        k = max(1, len(mine) // 5) if len(mine) > 1 else 0
        test += mine[:k]
        train += mine[k:]
    return classes, train, test


FOLDER_MAX_SIDE = 64
"""A folder's images are used at their own size up to this side unless --image-size says otherwise: a first
run on a laptop CPU should take minutes, and 32 px pictures upscaled to 64 cost four times the compute."""


def own_side(items: list[tuple[str, int]], cap: int = FOLDER_MAX_SIDE) -> int:
    """The images' own size: the median shorter side of up to 32 of them (read from their headers), capped."""
    import statistics

    from PIL import Image, UnidentifiedImageError

    ordered = sorted(items)
    sample = ordered[:: max(1, len(ordered) // 32)][:32]
    sides = []
    for path, _ in sample:
        try:
            with Image.open(path) as im:
                sides.append(min(im.size))
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):  # reported when read
            continue
    return max(8, min(cap, int(statistics.median(sides)))) if sides else cap


def load_folder_dataset(
    name: str, data: str | None, image_size: int = 0, subset: str | None = None, **_: Any
) -> FolderDataset:
    if not data:
        raise DataError(f"dataset {name} needs --data DIR (a folder of class sub-folders, or train/ and val/)")
    root = Path(data)
    if not root.exists():
        raise DataError(f"data path {root} does not exist")
    classes, train, test = split_folder(root)
    log.info(
        "%s: found %d classes, %d train and %d held-out images in %s", name, len(classes), len(train), len(test), root
    )
    side = image_size or (own_side(train) if name == "folder" else 224)
    if not image_size and name == "folder":
        log.info("folder: images used at %d px (their own size, at most %d; --image-size to choose)", side,
                 FOLDER_MAX_SIDE)  # fmt: skip
    channels = 3
    ds = FolderDataset(name, train, test, classes, side, channels)
    if subset:
        ds.extra["subset"] = read_subset(subset, train)
    return ds


@register_dataset("imagenet")
def load_imagenet(*, data: str | None = None, **kw: Any) -> FolderDataset:
    """ImageNet in the ``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG`` layout."""
    return load_folder_dataset("imagenet", data, **kw)


@register_dataset("folder")
def load_folder(*, data: str | None = None, **kw: Any) -> FolderDataset:
    """Any folder of class sub-folders (grayscale and odd sizes are converted and resized)."""
    return load_folder_dataset("folder", data, **kw)


def subsample(train: list[tuple[str, int]], train_fraction: float, val_fraction: float, seed: int) -> dict[str, Any]:
    """Per-class samples for the PC-DARTS ImageNet search: disjoint weight and arch subsets."""
    if not (0 < train_fraction and 0 < val_fraction and train_fraction + val_fraction <= 1):
        raise DataError("fractions must be positive and sum to at most 1")
    rng = random.Random(seed)
    by_class: dict[int, list[str]] = {}
    for p, y in train:
        by_class.setdefault(y, []).append(p)
    w, a = [], []
    for y in sorted(by_class):
        files = sorted(by_class[y])
        rng.shuffle(files)
        nw = max(1, round(len(files) * train_fraction))
        na = max(1, round(len(files) * val_fraction))
        w += [[p, y] for p in files[:nw]]
        a += [[p, y] for p in files[nw : nw + na]]
    return {"seed": seed, "train_fraction": train_fraction, "val_fraction": val_fraction, "weights": w, "arch": a}


def read_subset(path: str, train: list[tuple[str, int]]) -> dict[str, list[tuple[str, int]]]:
    if not Path(path).is_file():
        raise DataError(f"subset list {path} does not exist: make it with pcdarts subsample")
    try:
        data = read_run_json(path)  # bounded: size, encoding, nesting
        known = {p for p, _ in train}
        out = {k: [(str(p), int(y)) for p, y in data[k]] for k in ("weights", "arch")}
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"subset list {path} is malformed ({exc}): make it again with pcdarts subsample") from None
    stray = [p for p, _ in out["weights"] + out["arch"] if p not in known]
    if stray:
        raise DataError(f"subset list {path} names {len(stray)} files not in the train folder, e.g. {stray[0]}")
    labels = dict(train)
    wrong = [p for p, y in out["weights"] + out["arch"] if labels[p] != y]
    if wrong:
        raise DataError(
            f"subset list {path} gives {len(wrong)} files another label than their folder, e.g. {wrong[0]}: "
            "make it again with pcdarts subsample"
        )
    shared = {p for p, _ in out["weights"]} & {p for p, _ in out["arch"]}
    if shared:
        raise DataError(
            f"subset list {path} uses {len(shared)} files for both weights and alpha/beta; the parts must "
            "be disjoint: make it again with pcdarts subsample"
        )
    return out
