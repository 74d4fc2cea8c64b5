"""Named settings: per-dataset defaults and the ``--preset`` protocols of search and train (studies and
calibrations are protocol files beside the library: ``studies/*.toml``, read by ``pcdarts.experiments.protocols``).

Settings resolve in layers (``config.resolve_config``): a config field's default (the paper's CIFAR-10
value) < the cell's network (``CELL_DEFAULTS``) < the dataset's defaults here < a named preset < a resumed
run's saved settings < explicit values.
The config classes check every value; this module only names them.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

# Small-data defaults: what makes the bundled digits search + train finish in minutes on 2 cores.
DATASET_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {  # mnist shares fashion-mnist's below
    "search": {
        "digits": dict(init_channels=8, layers=5, epochs=8, warmup_epochs=3, batch_size=64, lr=0.05, arch_lr=6e-3),
        "synthetic": dict(init_channels=8, layers=5, epochs=4, warmup_epochs=1, batch_size=32, lr=0.05, arch_lr=6e-3),
        # a proxy that can learn (Study II, docs/STUDY.md): 4 channels per candidate op (C16/K4, as the paper),
        # 750 warm-up and 1,250 arch steps; about an hour on one CPU core
        "fashion-mnist": dict(
            image_size=16,
            train_images=8000,
            init_channels=16,
            layers=5,
            epochs=16,
            warmup_epochs=6,
            batch_size=32,
            lr=0.025,
            arch_lr=2e-3,
        ),  # fmt: skip
        # any folder of images: its own image size up to 64 px (data/folder.py) and a small supernet, so a
        # first try ends in minutes, not hours
        "folder": dict(
            image_size=0,
            init_channels=8,
            layers=5,
            epochs=10,
            warmup_epochs=3,
            batch_size=32,
            lr=0.05,
            arch_lr=6e-3,
            workers=2,
        ),  # fmt: skip
    },
    "train": {
        "digits": dict(
            init_channels=16, layers=6, epochs=12, batch_size=64, lr=0.05, cutout=4, drop_path=0.1, auxiliary=False
        ),
        "synthetic": dict(
            init_channels=8, layers=5, epochs=3, batch_size=32, lr=0.05, cutout=0, drop_path=0.0, auxiliary=False
        ),
        "fashion-mnist": dict(
            image_size=16,
            train_images=12000,
            init_channels=16,
            layers=6,
            epochs=8,
            batch_size=128,
            lr=0.1,
            cutout=0,
            drop_path=0.0,
            auxiliary=False,
        ),  # fmt: skip
        "folder": dict(
            image_size=0,
            init_channels=16,
            layers=6,
            epochs=20,
            batch_size=64,
            lr=0.05,
            cutout=0,
            drop_path=0.1,
            auxiliary=False,
            workers=2,
        ),  # fmt: skip
    },
}

for _kind in ("search", "train"):
    DATASET_DEFAULTS[_kind]["mnist"] = DATASET_DEFAULTS[_kind]["fashion-mnist"]

# A cell space's own network where a dataset sets none (below DATASET_DEFAULTS): NAS-Bench-201's (Dong & Yang
# 2020) is C=16 with N=5 cells per stage and none of the DARTS network's auxiliary head, drop path or cutout.
CELL_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "nasbench201": {
        "search": dict(init_channels=16, layers=15),
        "train": dict(init_channels=16, layers=15, auxiliary=False, drop_path=0.0, cutout=0),
    },
}

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
# NAS-Bench-201's protocol (Dong & Yang, ICLR 2020, and its code, D-X-Y/AutoDL-Projects: configs/nas-benchmark/
# algos/DARTS.config, exps/NAS-Bench-201/functions.py): the settings of its DARTS search (C=16, N=5, 50 epochs,
# no warm-up, batch 64, weight decay 5e-4, arch Adam lr 3e-4), for the method chosen by K and edge
# normalisation (pcdarts's defaults, K=4 with edge normalisation; --k 1 --no-edge-norm is its DARTS), and its
# training of every cell (200 epochs, batch 256, lr 0.1 cosine, weight decay 5e-4, crops and flips only).
# Not reproduced: its SGD is Nesterov's, and it clips no gradients (pcdarts clips at norm 5).
PRESETS["nasbench201"] = {
    "search": {
        "cifar10": dict(
            cell="nasbench201",
            init_channels=16,
            layers=15,
            epochs=50,
            warmup_epochs=0,
            batch_size=64,
            lr=0.025,
            lr_min=0.001,
            momentum=0.9,
            weight_decay=5e-4,
            grad_clip=5.0,
            arch_lr=3e-4,
            arch_weight_decay=1e-3,
            train_portion=0.5,
            crop_padding=4,
            flip=True,
            cutout=0,
        ),
    },
    "train": {
        "cifar10": dict(
            init_channels=16,
            layers=15,
            auxiliary=False,
            drop_path=0.0,
            cutout=0,
            epochs=200,
            batch_size=256,
            lr=0.1,
            schedule="cosine",
            weight_decay=5e-4,
            grad_clip=5.0,
            crop_padding=4,
            flip=True,
            val_fraction=0.0,
        ),
    },
}
for _name in PRESETS:
    PRESETS[_name]["search"]["cifar100"] = PRESETS[_name]["search"]["cifar10"]
    PRESETS[_name]["train"]["cifar100"] = PRESETS[_name]["train"]["cifar10"]


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


def described_network(dataset: str, cell: str = "darts") -> tuple[Any, tuple[int, int, int]]:
    """The trained network ``pcdarts info`` describes on a dataset, and its input (channels, side, side): the
    cell's published protocol where it has one for the dataset (the paper's for the DARTS cell,
    NAS-Bench-201's for its own), else what ``pcdarts train --dataset`` builds."""
    from ..data import SHAPES
    from .config import TrainConfig, resolve_config

    if dataset not in SHAPES:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of: {', '.join(SHAPES)}")
    protocol = PRESETS["nasbench201" if cell == "nasbench201" else "paper"]["train"].get(dataset)
    cfg = resolve_config(TrainConfig, dataset, {}, protocol, cell=cell)
    shape = SHAPES[dataset]
    side = cfg.image_size or shape.side
    return cfg, (shape.channels, side, side)


def check_preset(name: str | None, cfg: Any, cell: str | None = None) -> None:
    """Refuse a run that a preset's protocol does not allow (ConfigError, one line). ``cell``: a training's
    (from its genotype); a search's is its own setting."""
    cell = cell or getattr(cfg, "cell", "darts")
    if name == "nasbench201" and cell != "nasbench201":
        raise ConfigError(
            "--preset nasbench201 is NAS-Bench-201's protocol for its own cell: search with --cell nasbench201, "
            "train a nasbench201 genotype ('|nor_conv_3x3~0|+|...|' or such a search's folder)"
        )
    if name == "paper" and cfg.dataset == "imagenet" and not cfg.subset and not cfg.train_images:
        raise ConfigError(
            "the paper searches ImageNet on per-class subsets (10% weights, 2.5% arch): make them with "
            "`pcdarts subsample --data DIR --out subset.json` and pass --subset subset.json"
        )
