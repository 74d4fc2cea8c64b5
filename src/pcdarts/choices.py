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


def check_choice(name: str, value: Any) -> None:
    """A ConfigError unless ``value`` is one of ``CHOICES[name]`` (configs and modules built by hand alike)."""
    if value not in CHOICES[name]:
        raise ConfigError(f"{name.replace('_', ' ')} must be one of {', '.join(CHOICES[name])}, got {value!r}")
