"""Batched, on-device augmentation: one kernel launch per batch, no per-sample Python.

Draws come from ``gen`` on its own device (the stream keeps one on the data's device, so a GPU batch needs
no host-to-device copy); ``.to(x.device)`` is a no-op then, and only moves draws of a CPU generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to the input size at a random offset per sample."""
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))  # (N, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=gen.device).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=gen.device).to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W)
    xp = xp.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * padding))  # (N, C, H, W+2p)
    return xp.gather(3, cols[:, None, None, :].expand(n, c, h, w))  # (N, C, H, W)


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Horizontal flip of a random half of the batch."""
    mask = (torch.rand(x.shape[0], generator=gen, device=gen.device) < 0.5).to(x.device)
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, length: int, gen: torch.Generator) -> torch.Tensor:
    """Zero one ``length`` x ``length`` square per sample, centred anywhere (clipped at borders)."""
    if length <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n,), generator=gen, device=gen.device).to(x.device)
    cx = torch.randint(0, w, (n,), generator=gen, device=gen.device).to(x.device)
    ys = torch.arange(h, device=x.device)
    xs = torch.arange(w, device=x.device)
    in_y = (ys[None] >= cy[:, None] - length // 2) & (ys[None] < cy[:, None] + length // 2)  # (N, H)
    in_x = (xs[None] >= cx[:, None] - length // 2) & (xs[None] < cx[:, None] + length // 2)  # (N, W)
    hole = in_y[:, :, None] & in_x[:, None, :]  # (N, H, W)
    return x.masked_fill(hole[:, None], 0.0)


@dataclass(frozen=True)
class Augment:
    """Training augmentation of the CIFAR protocol: crop with padding, flip, cutout."""

    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        x = random_crop(x, self.crop_padding, gen)
        if self.flip:
            x = random_flip(x, gen)
        return x

    def after_normalise(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Cutout runs on the normalised tensor, as in the reference pipeline."""
        return cutout(x, self.cutout, gen)
