"""Named protocols (``--preset``): every value from the papers, overridable flag by flag."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

# The published protocols (SPEC.md). Search presets are the PC-DARTS ones; evaluation presets
# the DARTS/PC-DARTS ones. The ImageNet search preset uses the CIFAR-style partial-channel edge
# with K=2 and an ImageNet stem: it does not reproduce the official code's double evaluation
# of each mixed op nor its no-op "random sampling".
PRESETS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "paper": {
        "search": {
            "cifar10": dict(
                init_channels=16,
                layers=8,
                k=4,
                epochs=50,
                warmup_epochs=15,
                batch_size=256,
                lr=0.1,
                lr_min=0.0,
                momentum=0.9,
                weight_decay=3e-4,
                grad_clip=5.0,
                arch_lr=6e-4,
                arch_weight_decay=1e-3,
                train_portion=0.5,
                crop_padding=4,
                flip=True,
                cutout=0,
                lr_lag=True,
            ),
            "imagenet": dict(
                init_channels=16,
                layers=8,
                k=2,
                stem="imagenet",
                epochs=50,
                warmup_epochs=35,
                batch_size=1024,
                lr=0.5,
                arch_lr=6e-3,
                arch_weight_decay=1e-3,
                arch_grad_clip=5.0,
                lr_warmup_epochs=5,
                lr_lag=True,
                weight_decay=3e-4,
                grad_clip=5.0,
                image_size=224,
            ),
        },
        "train": {
            "cifar10": dict(
                init_channels=36,
                layers=20,
                auxiliary=True,
                auxiliary_weight=0.4,
                cutout=16,
                drop_path=0.3,
                epochs=600,
                batch_size=96,
                lr=0.025,
                schedule="cosine",
                lr_lag=True,
                val_fraction=0.0,
                weight_decay=3e-4,
                grad_clip=5.0,
                crop_padding=4,
                flip=True,
            ),
            "imagenet": dict(
                init_channels=48,
                layers=14,
                stem="imagenet",
                auxiliary=True,
                auxiliary_weight=0.4,
                label_smoothing=0.1,
                batch_size=1024,
                lr=0.5,
                schedule="linear",
                lr_warmup_epochs=5,
                weight_decay=3e-5,
                epochs=250,
                drop_path=0.0,
                cutout=0,
                image_size=224,
                val_fraction=0.0,
            ),
        },
    },
}
PRESETS["paper"]["search"]["cifar100"] = PRESETS["paper"]["search"]["cifar10"]
PRESETS["paper"]["train"]["cifar100"] = PRESETS["paper"]["train"]["cifar10"]


def preset_values(name: str | None, kind: str, dataset: str) -> dict[str, Any]:
    """The preset's values for this command and dataset ({} when no preset is asked for)."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    table = PRESETS[name][kind]
    if dataset not in table:
        raise ConfigError(f"preset {name!r} has no {kind} protocol for {dataset!r}; it covers: {', '.join(table)}")
    return dict(table[dataset])
