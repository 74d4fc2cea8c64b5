"""MNIST-format datasets (Fashion-MNIST, MNIST) from the four standard IDX files.

The IDX format is a big-endian header (magic 0x00000803 for images, 0x00000801
for labels, then the item count and, for images, rows and columns) followed by
raw uint8 data. Debian's ``dataset-fashion-mnist`` package installs the gzip
files in ``/usr/share/datasets/fashion-mnist``; its gzips are not upstream's
byte for byte, so the decompressed content is checked (magic, counts, length)
instead of an MD5.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .datasets import DataError, TensorDataset, register_dataset

IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
MAX_ITEMS = 10_000_000  # refuse absurd headers before allocating
MAX_BYTES = 1 << 30  # pixels of one IDX file (EMNIST, the largest in use, holds about 550 MB)

IDX_SETS: dict[str, dict[str, Any]] = {
    "fashion-mnist": dict(
        default_dir="/usr/share/datasets/fashion-mnist",
        package="dataset-fashion-mnist",
        classes=[
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
        flip=True,  # clothes are left-right symmetric enough; the usual augmentation is crop + flip
    ),
    "mnist": dict(
        default_dir="/usr/share/datasets/mnist", package=None, classes=[str(i) for i in range(10)], flip=False
    ),  # a mirrored digit is another glyph
}
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_bytes(path: Path, head: int) -> bytes:
    """The header, then at most the bytes it announces plus one (a gzip bomb is never inflated whole)."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            header = f.read(head)
            if len(header) < head or struct.unpack(">I", header[:4])[0] not in (IMAGES_MAGIC, LABELS_MAGIC):
                return header  # read_idx names the short or foreign file
            n = struct.unpack(">I", header[4:8])[0]
            rows, cols = struct.unpack(">II", header[8:16]) if head == 16 else (1, 1)
            if n > MAX_ITEMS or rows * cols > 1 << 20 or n * rows * cols > MAX_BYTES:
                return header  # read_idx names the implausible header
            return header + f.read(n * rows * cols + 1)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"{path} is not a readable IDX file ({type(exc).__name__}: {exc}); reinstall or re-copy it"
        ) from None


def read_idx(path: Path, *, images: bool) -> np.ndarray:
    """One IDX file as a uint8 array: (N, rows, cols) for images, (N,) for labels."""
    magic = IMAGES_MAGIC if images else LABELS_MAGIC
    head = 16 if images else 8
    data = _read_bytes(path, head)
    if len(data) < head:
        raise DataError(f"{path} is too short to be an IDX file ({len(data)} bytes)")
    got = struct.unpack(">I", data[:4])[0]
    if got != magic:
        kind = "images" if images else "labels"
        raise DataError(f"{path} has magic number 0x{got:08x}, not 0x{magic:08x} (IDX {kind}): wrong or corrupt file")
    n = struct.unpack(">I", data[4:8])[0]
    rows, cols = struct.unpack(">II", data[8:16]) if images else (1, 1)
    if n > MAX_ITEMS or rows * cols > 1 << 20 or rows == 0 or cols == 0 or n * rows * cols > MAX_BYTES:
        raise DataError(f"{path} claims {n} items of {rows}x{cols}: not a plausible IDX file")
    expected = head + n * rows * cols
    if len(data) != expected:
        raise DataError(f"{path} holds {len(data)} bytes, its header says {expected}: truncated or corrupt")
    arr = np.frombuffer(data, dtype=np.uint8, offset=head)
    return arr.reshape(n, rows, cols) if images else arr.copy()


def load_idx_folder(name: str, folder: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    spec = IDX_SETS[name]
    folder = Path(folder)
    paths = {key: _find(folder, stem) for key, stem in FILES.items()}
    missing = [FILES[k] for k, p in paths.items() if p is None]
    if missing:
        how = f"`apt-get install {spec['package']}` or " if spec["package"] else ""
        raise DataError(
            f"{name}: {folder} lacks {', '.join(missing)}(.gz); install it with {how}"
            "pass --data DIR holding the four IDX files"
        )
    tx, ty = read_idx(paths["train_images"], images=True), read_idx(paths["train_labels"], images=False)
    sx, sy = read_idx(paths["test_images"], images=True), read_idx(paths["test_labels"], images=False)
    for x, y, what in ((tx, ty, "train"), (sx, sy, "t10k")):
        if len(x) != len(y):
            raise DataError(f"{name}: {folder} has {len(x)} {what} images but {len(y)} labels")
        if len(y) and int(y.max()) >= len(spec["classes"]):
            raise DataError(f"{name}: {what} labels reach {int(y.max())}, more than {len(spec['classes'])} classes")
        if what == "train" and len(np.unique(y)) < 2:  # as image folders: one class trains to 100 % and means nothing
            raise DataError(f"{name}: every train label in {folder} is one class: a classifier needs at least two")
    if tx.shape[1:] != sx.shape[1:]:
        raise DataError(f"{name}: train images are {tx.shape[1:]} but test images {sx.shape[1:]}")
    return tx, ty, sx, sy


def _resize(x: np.ndarray, size: int) -> torch.Tensor:
    t = torch.from_numpy(np.array(x, copy=True)).unsqueeze(1)  # (N, 1, H, W) uint8, writable
    if size in (0, t.shape[-1]):
        return t
    out = torch.empty(t.shape[0], 1, size, size, dtype=torch.uint8)
    for i in range(0, len(t), 4096):  # chunks keep the float copy small
        f = F.interpolate(t[i : i + 4096].float(), size=(size, size), mode="area" if size < t.shape[-1] else "bilinear")
        out[i : i + 4096] = f.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _make_loader(name: str) -> Any:
    def load(*, data: str | None = None, image_size: int = 0, **_: Any) -> TensorDataset:
        spec = IDX_SETS[name]
        if image_size and not 4 <= image_size <= 512:
            raise DataError(f"image size {image_size} is out of range for {name}: choose 4..512 (native 28)")
        tx, ty, sx, sy = load_idx_folder(name, data or spec["default_dir"])
        train_x, test_x = _resize(tx, image_size), _resize(sx, image_size)
        xf = train_x.float() / 255.0
        mean, std = (round(float(xf.mean()), 4),), (round(float(xf.std()), 4),)
        pad = max(1, round(train_x.shape[-1] / 8))  # 4 px at 32, as CIFAR; 2 at 16
        return TensorDataset(
            name,
            train_x,
            torch.from_numpy(ty).long(),
            test_x,
            torch.from_numpy(sy).long(),
            len(spec["classes"]),
            mean,
            std,
            list(spec["classes"]),
            crop_padding=pad,
            flip=spec["flip"],
        )

    load.__doc__ = f"{name} from the IDX files in --data (default {IDX_SETS[name]['default_dir']})."
    return load


for _name in IDX_SETS:
    register_dataset(_name)(_make_loader(_name))
