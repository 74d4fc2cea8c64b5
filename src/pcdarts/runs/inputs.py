"""A run's data: the dataset its config names, the record of what it was (so a resume on other data is
refused), and the augmentation it trains with."""

from __future__ import annotations

from typing import Any

from ..data import Augment, FolderDataset, TensorDataset, carve_selection, get_dataset, limit_train
from ..errors import ConfigError, RunError


def load_data(cfg: Any) -> TensorDataset | FolderDataset:
    """The dataset a configuration names, its train split cut to ``train_images`` when set."""
    kwargs: dict[str, Any] = {"download": cfg.download}
    if cfg.image_size:
        kwargs["image_size"] = cfg.image_size
    if cfg.data:
        kwargs["data"] = cfg.data
    if getattr(cfg, "subset", None):
        kwargs["subset"] = cfg.subset
    ds = carve_selection(get_dataset(cfg.dataset, **kwargs), getattr(cfg, "holdout_images", 0))
    return limit_train(ds, cfg.train_images)


def data_fingerprint(ds: TensorDataset | FolderDataset) -> dict[str, Any]:
    """What the data of a run was: images per class in each split, and for image folders a digest of the file
    list, so a resume on a folder where images were added, removed or renamed is refused with what changed."""
    import hashlib

    from ..data import train_part

    def counts(labels: list[int]) -> list[int]:
        out = [0] * ds.num_classes
        for y in labels:
            if 0 <= int(y) < len(out):
                out[int(y)] += 1
        return out

    if isinstance(ds, TensorDataset):
        fp: dict[str, Any] = {"train": counts(ds.train_y.tolist()), "test": counts(ds.test_y.tolist())}
    else:
        files = sorted(str(p) for p, _ in list(train_part(ds)) + list(ds.test))
        fp = {
            "train": counts([y for _, y in train_part(ds)]),
            "test": counts([y for _, y in ds.test]),
            "files": hashlib.sha256("\n".join(files).encode()).hexdigest()[:16],
        }
    return fp


def check_data(ds: TensorDataset | FolderDataset, state: dict[str, Any] | None, out: Any) -> None:
    """A resumed run must see the data it began with (runs from before the record are taken as they are)."""
    saved = None if state is None else state.get("data")
    if not isinstance(saved, dict):
        return
    now = data_fingerprint(ds)
    for split in ("train", "test"):
        if saved.get(split) != now[split]:
            was, is_ = saved.get(split) or [], now[split]
            raise RunError(
                f"the data changed since {out} began: {split} images {sum(was):,} -> {sum(is_):,} "
                f"(per class {was[:6]}{'...' if len(was) > 6 else ''} -> {is_[:6]}{'...' if len(is_) > 6 else ''}): "
                "resume with the original data or start a new --out"
            )
    if saved.get("files") != now.get("files"):
        raise RunError(
            f"the data changed since {out} began: the same number of images per class, but other files: resume "
            "with the original data or start a new --out"
        )


def make_augment(cfg: Any, ds: TensorDataset | FolderDataset, cutout: int) -> Augment:
    """The augmentation of a run. Image folders crop with a random-resized crop, not by padding: there
    ``--crop-padding 0`` turns the random crop off (resize and centre crop) and any other value is refused."""
    if isinstance(ds, FolderDataset) and cfg.crop_padding > 0:
        raise ConfigError(
            f"--crop-padding {cfg.crop_padding}: image folders crop with a random-resized crop (8-100 % of the "
            "area), not by padding; --crop-padding 0 turns it off, unset keeps it"
        )
    pad = ds.crop_padding if cfg.crop_padding < 0 else cfg.crop_padding
    flip = ds.flip if cfg.flip is None else cfg.flip
    return Augment(crop_padding=pad, flip=flip, cutout=cutout)


def data_line(cfg: Any, ds: Any) -> str:
    """The data settings the config leaves to the dataset (-1 / unset), as this dataset resolves them."""
    aug = make_augment(cfg, ds, cfg.cutout)
    h, w = ds.image_size
    head = f"data: {ds.train_size:,} train images of {h}x{w}x{ds.in_channels}, {ds.num_classes} classes; augment: "
    flips, cut = f"flips {'on' if aug.flip else 'off'}", f"cutout {aug.cutout}"
    if isinstance(ds, FolderDataset):  # what the folder stream will do, not the tensor datasets' wording
        crop = "random-resized crop (8-100 % of the area)" if aug.crop_padding != 0 else "no random crop (centre)"
        jitter = ", colour jitter" if cfg.__class__.__name__ == "TrainConfig" else ""
        return head + f"{crop}, {flips}{jitter}, {cut}"
    return head + f"crop padding {aug.crop_padding}, {flips}, {cut}"
