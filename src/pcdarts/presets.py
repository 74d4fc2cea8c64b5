"""Every named protocol in one place: per-dataset defaults, ``--preset`` protocols, studies and calibrations.

Settings resolve in layers (``config.resolve_config``): a config field's default (the paper's CIFAR-10
value) < the dataset's defaults here < a named preset < a resumed run's saved settings < explicit values.
The config classes check every value; this module only names them.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

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


# Study II's one training protocol (docs/STUDY2_PLAN.md), shared by its calibration and its study: the
# fashion-mnist defaults with a larger validation split (2,800 images: a ranking on 1,200 has a standard
# error of about 1 point). Epochs come from the calibration's budgets.
STUDY2_TRAIN: dict[str, Any] = {
    k: v for k, v in {**DATASET_DEFAULTS["train"]["fashion-mnist"], "train_images": 14000, "val_fraction": 0.2}.items()
    if k != "epochs"
}  # fmt: skip

# Named studies: `pcdarts study --preset NAME`. Each is a complete protocol; flags still override.
# Arms are (name, search overrides) pairs.
STUDY_PRESETS: dict[str, dict[str, Any]] = {
    # Fashion-MNIST at a proxy scale that fits a 2-core CPU (docs/STUDY.md): search on 8k train images
    # (4k weights + 4k alpha/beta) at 16x16; final networks trained on 12k train images (10% held out
    # for model selection) at 16x16; the 10k test images read once per cell.
    "fmnist-cpu": dict(
        dataset="fashion-mnist",
        searches=3,
        random_cells=5,
        train_seed=0,
        arms=[("pcdarts", {}), ("pdarts-cap2", {"max_param_free": 2}), ("beta-decay", {"beta_decay": 25.0})],
        # Study I's search (the fashion-mnist defaults of its day), as pinned in its study_config.json
        search=dict(
            image_size=16,
            train_images=8000,
            init_channels=8,
            layers=5,
            epochs=8,
            warmup_epochs=3,
            batch_size=64,
            lr=0.05,
            arch_lr=6e-3,
        ),
        train={**DATASET_DEFAULTS["train"]["fashion-mnist"], "val_fraction": 0.1},
    ),
    # Study II (docs/STUDY2_PLAN.md): the training epochs come from the calibration (--budget-from).
    "fmnist-study2": dict(
        dataset="fashion-mnist",
        searches=6,
        random_cells=12,
        train_seed=0,
        primary="cap2",
        arms=[
            ("cap2", {"max_param_free": 2, "max_param_free_reduce": 2}),
            ("pcdarts", {}),
            ("pt", {"select": "pt", "select_tune_epochs": 0.2, "select_score_batches": 16}),
        ],
        search=dict(
            image_size=16,
            train_images=8000,
            init_channels=16,
            layers=5,
            epochs=16,
            warmup_epochs=6,
            batch_size=32,
            lr=0.025,
            arch_lr=2e-3,
        ),
        train=dict(STUDY2_TRAIN),
        epochs_from_calibration=True,  # without --budget-from (or an explicit epochs) the run is refused
    ),
    # Study III (docs/STUDY3_PLAN.md): the NAS-Bench-201 cell, the paper's ablation of partial channels (K)
    # and edge normalisation as four arms, 60 random cells from the whole space (10 trained twice), model
    # selection on a 10,000-image hold-out carved before any train subset.
    "fmnist-study3": dict(
        dataset="fashion-mnist",
        searches=6,
        random_cells=60,
        retrain_random=10,
        train_seed=0,
        primary="pcdarts",
        rule="superiority",
        oneshot_arm="pcdarts",
        oneshot_images=2000,
        arms=[
            ("pcdarts", {"k": 4, "edge_norm": True}),
            ("pc-only", {"k": 4, "edge_norm": False}),
            ("en-only", {"k": 1, "edge_norm": True}),
            ("darts", {"k": 1, "edge_norm": False}),
        ],
        search=dict(
            cell="nasbench201",
            image_size=16,
            holdout_images=10000,
            train_images=8000,
            init_channels=16,
            layers=15,
            epochs=30,
            warmup_epochs=10,
            batch_size=64,
            lr=0.025,
            arch_lr=2e-3,
        ),
        train=dict(
            image_size=16,
            holdout_images=10000,
            train_images=10000,
            init_channels=16,
            layers=15,
            epochs=20,
            batch_size=128,
            lr=0.1,
            cutout=0,
            drop_path=0.0,
            auxiliary=False,
        ),
    ),
}

# Named calibrations: `pcdarts fidelity --preset NAME`; flags still override.
FIDELITY_PRESETS: dict[str, dict[str, Any]] = {
    # Study II's calibration on Fashion-MNIST (docs/STUDY.md): 12 random cells at 8 (Study I's budget), 16
    # and 32 epochs, cells 0-3 again with a second seed at 32 epochs; Study II's training protocol.
    "fmnist-study2": dict(
        dataset="fashion-mnist",
        cells=12,
        budgets=(8, 16, 32),
        seed_cells=4,
        seed_budget=32,
        train_seed=0,
        train=dict(STUDY2_TRAIN),
    ),
}


def named(table: dict[str, dict[str, Any]], name: str, what: str) -> dict[str, Any]:
    """A copy of the named protocol (its nested settings copied too), or a one-line error naming the choices."""
    import copy

    if name not in table:
        raise ConfigError(f"unknown {what} preset {name!r}; choose one of: {', '.join(table)}")
    return copy.deepcopy(table[name])
