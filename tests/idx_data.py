"""Tiny MNIST-format (IDX) datasets written on the fly: the suite never needs the Debian package."""

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(
    folder: Path, *, n_train: int = 120, n_test: int = 40, side: int = 12, gz: bool = True, seed: int = 0
) -> Path:
    """Four IDX files with a learnable class pattern (10 classes)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    protos = rng.integers(0, 256, size=(10, side, side))

    def images(n):
        y = np.arange(n) % 10
        rng.shuffle(y)
        x = (0.7 * protos[y] + 0.3 * rng.integers(0, 256, size=(n, side, side))).astype(np.uint8)
        return x, y.astype(np.uint8)

    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x, y = images(n)
        blobs = {
            f"{prefix}-images-idx3-ubyte": struct.pack(">IIII", 0x803, n, side, side) + x.tobytes(),
            f"{prefix}-labels-idx1-ubyte": struct.pack(">II", 0x801, n) + y.tobytes(),
        }
        for name, data in blobs.items():
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return folder
