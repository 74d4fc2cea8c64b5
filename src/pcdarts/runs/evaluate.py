"""A trained network scored on a dataset's held-out split: the ``eval`` command, in Python."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..data import final_test_part, get_dataset, make_stream
from ..deploy import load_trained
from ..errors import ConfigError
from ..files import load_checkpoint
from .engine import evaluate
from .environment import pick_device


def evaluate_trained(
    checkpoint: str | Path,
    *,
    dataset: str | None = None,
    data: str | None = None,
    batch_size: int = 256,
    device: str = "auto",
) -> dict[str, Any]:
    """A trained network's top-1, top-5 and loss on a dataset's held-out split (its own dataset by default, at
    the path its run remembers), with its own input size and normalisation. Refused in one line when the
    dataset's classes or channels do not match the network's."""
    dev = pick_device(device)
    model, info = load_trained(checkpoint, map_location=dev)
    model = model.to(dev)
    name = dataset or info.dataset
    kwargs: dict[str, Any] = {"image_size": int(info.input_size[0])}
    if data is None and name == info.dataset:  # the run remembers where its data was
        saved = load_checkpoint(checkpoint).get("config")
        data = saved.get("data") if isinstance(saved, dict) else None
    if data:
        kwargs["data"] = data
    ds = get_dataset(name, **kwargs)
    if ds.num_classes != len(info.classes) or ds.in_channels != info.in_channels:
        raise ConfigError(
            f"the model was trained for {len(info.classes)} classes on {info.dataset}; "
            f"{name} has {ds.num_classes} classes and {ds.in_channels} channels"
        )
    stream = make_stream(ds, final_test_part(ds), batch_size, train=False, device=dev, mean=info.mean, std=info.std)
    with torch.no_grad():
        stats = evaluate(model, stream)
    return {
        "dataset": name,
        "test_accuracy": stats["top1"],
        "test_top5": stats["top5"],
        "test_loss": stats["loss"],
        "images": stats["n"],
        "classes": len(stats["per_class"]),
    }
