"""The settings that take one of a few names, and the names: checked here only."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

CHOICES: dict[str, tuple[str, ...]] = {
    "cell": ("darts", "nasbench201"),
    "partial_mode": ("shuffle", "shift"),
    "recompute": ("none", "edges", "cells"),
    "stem": ("cifar", "imagenet"),
    "precision": ("fp32", "bf16", "fp16"),
    "memory_format": ("auto", "channels_last", "contiguous"),
    "schedule": ("cosine", "linear"),
}


"""The settings that take one of a few names, and the names: checked here, by ``check_choice``, only."""


MEMORY_FORMATS = CHOICES["memory_format"]


_CELL_HINT = "--space nb201 is NAS-Bench-201's ops in the DARTS cell; its own cell is --cell nasbench201"
_OTHER_FLAG = {("cell", "nb201"): _CELL_HINT}


def check_choice(name: str, value: Any) -> None:
    """A ConfigError unless ``value`` is one of ``CHOICES[name]`` (configs and modules built by hand alike)."""
    if value not in CHOICES[name]:
        hint = _OTHER_FLAG.get((name, value))
        raise ConfigError(
            f"{name.replace('_', ' ')} must be one of {', '.join(CHOICES[name])}, got {value!r}"
            + (f" ({hint})" if hint else "")
        )
