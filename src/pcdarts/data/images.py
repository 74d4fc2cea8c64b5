"""Reading one image file and the views of it a run uses: decoding to 8-bit grey or RGB, crops, colour jitter.

Shared by the image-folder datasets (training and evaluation views) and by ``pcdarts predict``.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import DataError


def decode(path: str, channels: int) -> Any:
    """``open_image`` for a dataset: any failure to decode becomes a one-line DataError naming the file."""
    try:
        return open_image(path, channels)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot decode image {path} ({type(exc).__name__}): remove or replace the file") from None


def open_image(path: str | Path, channels: int) -> Any:
    """An image file decoded to 8-bit grey (``channels`` 1) or RGB, as every reader of image files needs it.

    Only regular files are opened (a FIFO would block forever); a decompression bomb is refused, naming the
    file; 16-bit and 32-bit grey images are scaled by their bit depth to 8 bits, not clipped (Pillow's own
    conversion clips them, which turns most of a 16-bit image white).
    """
    from PIL import Image

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(str(p))
    if not p.is_file():
        raise DataError(f"{p} is not a regular file (a FIFO, device or folder): give an image file")
    try:
        with Image.open(p) as im:
            return as_8bit(im, channels, str(p))
    except Image.DecompressionBombError:
        raise DataError(f"image {p} is too large to decode safely (a decompression bomb?): remove it") from None


def as_8bit(im: Any, channels: int, name: str = "the image") -> Any:
    """A decoded image as 8-bit grey (``channels`` 1) or RGB; 16-bit and 32-bit grey scaled by their depth."""
    from PIL import Image

    if not (im.mode.startswith("I;16") or im.mode in ("I", "F")):
        return im.convert("L" if channels == 1 else "RGB")
    arr = np.asarray(im, dtype=np.float64)
    top, bottom = (float(arr.max()), float(arr.min())) if arr.size else (0.0, 0.0)
    if im.mode.startswith("I;16"):
        scale = 65535.0
    elif im.mode == "F" and top <= 1.0 and bottom >= 0.0:
        scale = 1.0
    elif 0 <= bottom and top <= 255:
        scale = 255.0
    elif 0 <= bottom and top <= 65535:
        scale = 65535.0
    else:
        raise DataError(f"image {name} holds {im.mode} values up to {top:g}: save it as 8- or 16-bit grey or RGB")
    grey = Image.fromarray(np.clip(np.rint(arr / scale * 255.0), 0, 255).astype(np.uint8), mode="L")
    return grey.convert("L" if channels == 1 else "RGB")


def random_resized_crop(im: Any, side: int, rng: random.Random) -> Any:
    """Inception-style crop (8-100 % of the area, aspect 3/4-4/3) resized to ``side``, drawn from ``rng``."""
    from PIL import Image

    w, h = im.size
    area = w * h
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return im.resize((side, side), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
    s = min(w, h)  # fall back to a centre square
    return im.resize((side, side), Image.BILINEAR, box=((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))


def centre_crop(im: Any, side: int) -> Any:
    """Evaluation view: resize the short side to side*256/224, then the central ``side`` square."""
    from PIL import Image

    w, h = im.size
    scale = round(side * 256 / 224) / min(w, h)
    im = im.resize((max(side, round(w * scale)), max(side, round(h * scale))), Image.BILINEAR)
    w, h = im.size
    x0, y0 = (w - side) // 2, (h - side) // 2
    return im.crop((x0, y0, x0 + side, y0 + side))


def jitter(arr: np.ndarray, rng: random.Random, strength: float = 0.4) -> np.ndarray:
    """Colour jitter of a [0, 1] image: brightness, contrast and (RGB) saturation, each by up to ``strength``."""
    b = rng.uniform(1 - strength, 1 + strength)
    c = rng.uniform(1 - strength, 1 + strength)
    arr = arr * b
    mean = arr.mean()
    arr = (arr - mean) * c + mean
    if arr.ndim == 3 and arr.shape[2] == 3:
        s = rng.uniform(1 - strength, 1 + strength)
        grey = arr.mean(axis=2, keepdims=True)
        arr = (arr - grey) * s + grey
    return np.clip(arr, 0.0, 1.0)
