"""CIFAR-10/100 from the standard python-pickle archives, optionally downloaded and verified.

The pickles are read with a restricted unpickler that admits only the NumPy
array machinery the archives use, so a hostile file cannot run code.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .datasets import DataError, TensorDataset, register_dataset

log = logging.getLogger(__name__)

CIFAR = {
    "cifar10": dict(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        train=[f"data_batch_{i}" for i in range(1, 6)],
        test=["test_batch"],
        label_key=b"labels",
        meta="batches.meta",
        names_key=b"label_names",
        classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
    ),
    "cifar100": dict(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python",
        train=["train"],
        test=["test"],
        label_key=b"fine_labels",
        meta="meta",
        names_key=b"fine_label_names",
        classes=100,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
    ),
}

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR archive")


def _unpickle(data: bytes, where: str) -> dict:
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:
        raise DataError(f"{where} is not a readable CIFAR batch ({exc}); re-extract or re-download it") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where} is not a CIFAR batch (expected a dict)")
    return obj


MAX_BATCH_IMAGES = 60_000  # the largest CIFAR batch file (CIFAR-100's train) holds 50,000 images


def _pixels(data: Any, where: str) -> np.ndarray:
    """A batch's ``data``: uint8 pixels as the archives hold them. Anything else (floats in 0..1, negative
    values, Python lists that the unpickler would expand by reference) is refused, not cast."""
    if not isinstance(data, np.ndarray):
        raise DataError(f"CIFAR batch {where}: data is a {type(data).__name__}, not an array of uint8 pixels")
    if data.size > MAX_BATCH_IMAGES * 3072 or data.size % 3072:
        raise DataError(f"CIFAR batch {where}: data holds {data.size:,} values, not N x 3,072 pixels")
    if data.dtype != np.uint8:
        if data.dtype.kind not in "iu":
            raise DataError(f"CIFAR batch {where}: data is {data.dtype}, not uint8 pixels: wrong archive")
        if data.size and (int(data.min()) < 0 or int(data.max()) > 255):
            raise DataError(f"CIFAR batch {where}: data holds values outside 0..255, not pixels: wrong archive")
        data = data.astype(np.uint8)
    return data


def _labels(labels: Any, where: str) -> np.ndarray:
    if isinstance(labels, np.ndarray) and labels.dtype.kind in "iu" and labels.ndim == 1:
        return labels.astype(np.int64)
    if not isinstance(labels, list) or len(labels) > MAX_BATCH_IMAGES:
        raise DataError(f"CIFAR batch {where}: labels are a {type(labels).__name__}, not a list of class numbers")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels):
        raise DataError(f"CIFAR batch {where}: labels hold something other than class numbers")
    return np.asarray(labels, dtype=np.int64)


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


MAX_DOWNLOAD = 1 << 30  # bytes: the CIFAR archives are about 170 MB


def download(url: str, dest: Path, md5: str, timeout: float = 60.0, max_bytes: int = MAX_DOWNLOAD) -> Path:
    """Fetch ``url`` to ``dest`` through a ``.part`` file; only a file with the right MD5 is kept.

    A response that announces or sends more than ``max_bytes`` is cut off and discarded.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        if md5sum(dest) == md5:
            return dest
        raise DataError(f"{dest} exists but its checksum is wrong: delete it and download again")
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as f:
            expected = resp.headers.get("Content-Length")
            if expected is not None and expected.isdigit() and int(expected) > max_bytes:
                raise DataError(f"{url} announces {int(expected):,} bytes, more than a dataset archive: refused")
            got = 0
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                got += len(chunk)
                if got > max_bytes:
                    raise DataError(f"{url} sent more than {max_bytes:,} bytes, more than a dataset archive: refused")
                f.write(chunk)
        if expected is not None and got != int(expected):
            raise DataError(f"download of {url} stopped at {got} of {expected} bytes; run again")
    except DataError:
        part.unlink(missing_ok=True)
        raise
    except Exception as exc:
        part.unlink(missing_ok=True)
        raise DataError(
            f"download of {url} failed ({exc}); check the network or pass --data with a local copy"
        ) from None
    digest = md5sum(part)
    if digest != md5:
        part.unlink(missing_ok=True)
        raise DataError(f"checksum mismatch for {url} (md5 {digest}, expected {md5}); the file was discarded")
    os.replace(part, dest)
    return dest


def _read_members(source: Path, spec: dict) -> dict[str, bytes]:
    names = spec["train"] + spec["test"] + [spec["meta"]]
    if source.is_file():
        try:
            with tarfile.open(source, "r:gz") as tar:
                members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
                missing = [n for n in names if n not in members]
                if missing:
                    raise DataError(f"{source} lacks {', '.join(missing)}: is it the {spec['folder']} archive?")
                return {n: tar.extractfile(members[n]).read() for n in names}  # type: ignore[union-attr]
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DataError(f"{source} is not a readable .tar.gz ({exc}); download it again") from None
    folder = source / spec["folder"] if (source / spec["folder"]).is_dir() else source
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"{folder} lacks {', '.join(missing)}: pass the extracted {spec['folder']} folder or the archive"
        )
    return {n: (folder / n).read_bytes() for n in names}


def load_cifar(
    name: str, data: str | None = None, download_: bool = False, url: str | None = None, md5: str | None = None
) -> TensorDataset:
    spec = CIFAR[name]
    if data is None:
        raise DataError(f"{name} needs --data DIR (the extracted folder or the .tar.gz), or --download")
    source = Path(data)
    archive = source / Path(spec["url"]).name if source.is_dir() or not source.exists() else source
    if download_ and not (source / spec["folder"]).is_dir() and not source.is_file():
        source = download(url or spec["url"], archive, md5 or spec["md5"])
    elif not source.exists():
        raise DataError(
            f"CIFAR path {source} does not exist: pass the extracted folder or the archive, or add --download"
        )
    elif source.is_dir() and not (source / spec["folder"]).is_dir() and archive.is_file():
        source = archive
    blobs = _read_members(source, spec)

    def batches(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for n in names:
            d = _unpickle(blobs[n], n)
            try:
                x = _pixels(d[b"data"], n).reshape(-1, 3, 32, 32)
                y = _labels(d[spec["label_key"]], n)
            except KeyError as exc:
                raise DataError(f"CIFAR batch {n} is malformed (no {exc} entry)") from None
            except ValueError as exc:
                raise DataError(f"CIFAR batch {n} is malformed ({exc})") from None
            if len(x) != len(y):
                raise DataError(f"CIFAR batch {n} has {len(x)} images but {len(y)} labels")
            xs.append(torch.from_numpy(x.copy()))
            ys.append(torch.from_numpy(y))
        return torch.cat(xs), torch.cat(ys)

    trx, try_ = batches(spec["train"])
    tex, tey = batches(spec["test"])
    meta = _unpickle(blobs[spec["meta"]], spec["meta"])
    raw_names = meta.get(spec["names_key"], [])
    if not isinstance(raw_names, list) or len(raw_names) > spec["classes"]:
        raise DataError(f"{spec['meta']} holds no list of {spec['classes']} class names: re-extract or re-download it")
    names = [n.decode(errors="replace") if isinstance(n, bytes) else str(n)[:200] for n in raw_names]
    if int(max(try_.max(), tey.max())) >= spec["classes"] or int(min(try_.min(), tey.min())) < 0:
        raise DataError(f"{name} labels fall outside 0..{spec['classes'] - 1}: wrong or damaged archive")
    return TensorDataset(name, trx, try_, tex, tey, spec["classes"], spec["mean"], spec["std"], names)


@register_dataset("cifar10")
def load_cifar10(*, data: str | None = None, download: bool = False, **kw: Any) -> TensorDataset:
    """CIFAR-10 (50,000 train / 10,000 test, 32x32), uint8 on the device."""
    return load_cifar("cifar10", data, download, kw.get("url"), kw.get("md5"))


@register_dataset("cifar100")
def load_cifar100(*, data: str | None = None, download: bool = False, **kw: Any) -> TensorDataset:
    """CIFAR-100 with fine labels."""
    return load_cifar("cifar100", data, download, kw.get("url"), kw.get("md5"))
