"""Data-path benchmark: the on-device batched CIFAR pipeline against a per-sample Python pipeline.

Both do the same work per image (random crop 32 with padding 4, horizontal flip, normalise, cutout
16) on CIFAR-shaped uint8 images, in the same process, one after the other.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

import numpy as np
import torch

from ..data import Augment, BatchStream

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def per_sample_pipeline(images: np.ndarray, labels: np.ndarray, batch: int, rng: random.Random) -> Any:
    """What a classic Dataset/transform stack does: one image at a time in Python, then collate."""
    mean = np.array(MEAN, dtype=np.float32)[:, None, None]
    std = np.array(STD, dtype=np.float32)[:, None, None]
    order = list(range(len(images)))
    rng.shuffle(order)
    for start in range(0, len(order), batch):
        xs = []
        for i in order[start : start + batch]:
            img = np.pad(images[i], ((0, 0), (4, 4), (4, 4)))
            dy, dx = rng.randint(0, 8), rng.randint(0, 8)
            img = img[:, dy : dy + 32, dx : dx + 32].astype(np.float32) / 255.0
            if rng.random() < 0.5:
                img = img[:, :, ::-1]
            img = (img - mean) / std
            cy, cx = rng.randrange(32), rng.randrange(32)
            img[:, max(0, cy - 8) : min(32, cy + 8), max(0, cx - 8) : min(32, cx + 8)] = 0.0
            xs.append(torch.from_numpy(np.ascontiguousarray(img)))
        yield torch.stack(xs), torch.from_numpy(labels[order[start : start + batch]])


def data_bench(args: argparse.Namespace) -> dict[str, Any]:
    from .steps import machine as _machine

    n = args.images
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    device = torch.device(args.device)
    stream = BatchStream(
        torch.from_numpy(images),
        torch.from_numpy(labels),
        args.batch,
        mean=MEAN,
        std=STD,
        augment=Augment(4, True, 16),
        device=device,
    )
    rows = []
    for name in ("on-device batched", "per-sample python"):
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            if name == "on-device batched":
                for _batch in stream.epoch():
                    pass
                if device.type == "cuda":
                    torch.cuda.synchronize()
            else:
                for _batch in per_sample_pipeline(images, labels, args.batch, random.Random(0)):
                    pass
            times.append(time.perf_counter() - t)
        med = sorted(times)[len(times) // 2]
        rows.append(
            {"pipeline": name, "images_per_s": n / med, "min_s": min(times), "max_s": max(times), "median_s": med}
        )
    return {
        "benchmark": "data path",
        "config": {
            "images": n,
            "batch": args.batch,
            "device": args.device,
            "threads": args.threads,
            "repeats": args.repeats,
        },
        "machine": _machine(),
        "rows": rows,
        "speedup": rows[0]["images_per_s"] / rows[1]["images_per_s"],
    }


def print_data(res: dict[str, Any]) -> None:
    c = res["config"]
    print(
        f"CIFAR data path: {c['images']} images, batch {c['batch']}, device {c['device']}, {c['threads']} threads, "
        f"torch {res['machine']['torch']}"
    )
    for r in res["rows"]:
        print(
            f"{r['pipeline']:>20}: {r['images_per_s']:>10.0f} images/s (epoch {r['median_s']:.3f} s, "
            f"min {r['min_s']:.3f}, max {r['max_s']:.3f})"
        )
    print(f"on-device / per-sample: {res['speedup']:.1f}x")
