"""Run configurations: frozen dataclasses whose defaults are the paper's values.

``SearchConfig`` defaults are the PC-DARTS CIFAR-10 search protocol and
``TrainConfig`` defaults the DARTS/PC-DARTS CIFAR-10 evaluation protocol.
Per-dataset defaults (``DATASET_DEFAULTS``) and presets are laid on top, and
explicit user values on top of those (``resolve_config``).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from ..choices import CHOICES, check_choice
from ..errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchConfig:
    dataset: str = "digits"
    data: str | None = None  # folder or archive for datasets read from disk
    download: bool = False  # fetch and verify the archive (CIFAR) when --data lacks it
    subset: str | None = None  # per-class file list from `pcdarts subsample` (ImageNet search)
    workers: int = 4  # DataLoader processes for image folders
    image_size: int = 0  # resize the dataset to this side (0 = its size; digits are upscaled to 16, folders at most 64)
    train_images: int = 0  # 0: the whole train split; N: a fixed per-class subset of N images (CPU proxies)
    holdout_images: int = 0  # N: N train images set aside (per class, fixed) before --train-images; never searched on
    cell: str = "darts"  # the cell space: darts (the paper's) or nasbench201 (NAS-Bench-201's cell and network)
    init_channels: int = 16  # C of the supernet (paper: 16)
    layers: int = 8  # cells in the supernet (paper: 8, reductions at 1/3 and 2/3)
    k: int = 4  # partial channel proportion 1/K (paper 4; 1 = plain DARTS)
    partial_mode: str = "shuffle"  # how sampled channels are mixed: shuffle (paper) or shift
    edge_norm: bool = True  # edge normalisation with beta (--no-edge-norm for the ablation)
    stem: str = "cifar"  # cifar (3x3 conv) or imagenet (three stride-2 convs)
    space: str = "auto"  # the candidate ops: auto (the cell's own), darts (the paper's 8) or nb201 (NAS-Bench-201's 5)
    ops: tuple[str, ...] = ()  # ops to search, comma-separated, in alpha-column order ('none' only if listed)
    recompute: str = "none"  # recompute in backward: none, edges (per state's edges) or cells: same result, less memory
    epochs: int = 50  # search epochs (paper 50)
    warmup_epochs: int = 15  # epochs before alpha/beta start to move (paper 15 of 50)
    batch_size: int = 256  # per step, for both the weight and the arch batch (global under torchrun)
    lr: float = 0.1  # SGD lr for weights, cosine-annealed to lr_min
    lr_min: float = 0.0  # floor of the cosine-annealed weight lr
    lr_warmup_epochs: int = 0  # linear lr warm-up epochs (official ImageNet search: 5 when batch > 256)
    lr_lag: bool = False  # run epoch e at the cosine lr of e + 1, as the official code's scheduler does
    momentum: float = 0.9  # SGD momentum of the weight step
    weight_decay: float = 3e-4  # SGD weight decay of the weight step
    grad_clip: float = 5.0  # grad-norm clip of the weight step
    arch_lr: float = 6e-4  # Adam lr for alpha and beta
    arch_beta1: float = 0.5  # Adam beta1 of the arch step
    arch_beta2: float = 0.999  # Adam beta2 of the arch step
    arch_weight_decay: float = 1e-3  # weight decay of alpha/beta
    arch_grad_clip: float = 0.0  # grad-norm clip of the arch step (official ImageNet search: 5); 0 off
    unrolled: bool = False  # second-order (unrolled) DARTS arch step instead of first order
    train_portion: float = 0.5  # share of the train set that updates weights; the rest updates alpha/beta
    crop_padding: int = -1  # -1: the dataset's default
    flip: bool | None = None  # None: the dataset's default
    cutout: int = 0  # cutout square side in pixels; 0 off (the paper's search: off)
    seed: int = 2  # seed of weights, alpha/beta, data split and order
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    deterministic: bool = False  # deterministic kernels (slower; exact repeats on GPU)
    threads: int = 0  # CPU intra-op threads (0: torch's default, fewer on a busy machine without OMP_NUM_THREADS)
    precision: str = "fp32"  # fp32, bf16 (autocast) or fp16 (autocast + grad scaling; CUDA)
    # Collapse remedies, all off by default (the paper's method); see remedies.py for the sources.
    max_param_free: int = -1  # P-DARTS: at most this many parameter-free ops in the derived normal cell; -1 off
    max_param_free_reduce: int = -1  # the same cap for the reduction cell (its own value); -1 off
    early_stop_param_free: int = 0  # DARTS+ criterion 1: end the search once the normal cell has this many; 0 off
    early_stop_stable: int = 0  # DARTS+ criterion 2: end the search once the genotype is unchanged N arch epochs; 0 off
    beta_decay: float = 0.0  # beta-DARTS: final weight of the Beta-Decay term on the arch loss; 0 off

    @classmethod
    def for_dataset(cls, dataset: str, **overrides: Any) -> SearchConfig:
        """The configuration the CLI gives for ``dataset`` (its laptop-sized defaults), with ``overrides`` on top."""
        return resolve_config(cls, dataset, overrides)

    def __post_init__(self) -> None:
        _check_common(self)
        from ..nas.candidates import op_space

        ops = self.ops.split(",") if isinstance(self.ops, str) else self.ops
        if ops is None:
            ops = ()
        object.__setattr__(self, "ops", tuple(str(o).strip() for o in ops if str(o).strip()))
        if self.space == "auto":  # the cell's own ops (a list given with --ops is taken as written)
            object.__setattr__(self, "space", "nb201" if self.cell == "nasbench201" and not self.ops else "darts")
        if self.cell == "nasbench201":
            if self.layers % 3:
                raise ConfigError(
                    f"the nasbench201 network has three stages of N cells: layers must be a multiple of 3 "
                    f"(NAS-Bench-201: 15), got {self.layers}"
                )
            if self.stem != "cifar":
                raise ConfigError(f"the nasbench201 network has its own 3x3 conv stem: drop --stem {self.stem}")
            if self.max_param_free_reduce >= 0:
                raise ConfigError("the nasbench201 cell has no reduction cell to cap: drop --max-param-free-reduce")
        # a ConfigError for unknown ops or spaces, here and not at the first step; the name as resolved
        # (an op list of your own is 'custom'), so config.json says what was searched
        object.__setattr__(self, "space", op_space(self.space, self.ops).name)
        edges = 6 if self.cell == "nasbench201" else 8  # the picks a derived normal cell has
        for name in ("max_param_free", "max_param_free_reduce"):
            if not -1 <= getattr(self, name) <= edges:
                what = {"max_param_free": "max param-free ops", "max_param_free_reduce": "max param-free reduce ops"}
                raise ConfigError(
                    f"{what[name]} must be -1 (off) or between 0 and {edges} (the {self.cell} cell's {edges} picks), "
                    f"got {getattr(self, name)}"
                )
        if not 0 <= self.early_stop_param_free <= edges:
            raise ConfigError(
                f"early-stop param-free count must be 0 (off) or between 1 and {edges} (the {self.cell} cell's "
                f"{edges} picks), got {self.early_stop_param_free}"
            )
        if self.early_stop_stable < 0:
            raise ConfigError(f"early-stop stable epochs must be >= 0, got {self.early_stop_stable}")
        if not (math.isfinite(self.beta_decay) and self.beta_decay >= 0):
            raise ConfigError(f"beta decay weight must be a finite number >= 0, got {self.beta_decay}")
        if self.precision == "fp16":
            raise ConfigError(
                "fp16 is refused for the search: the arch step has no loss scaling, so small alpha gradients "
                "underflow; use --precision bf16 (no scaling needed) or fp32"
            )
        if self.k < 1:
            raise ConfigError(f"K must be >= 1, got {self.k}")
        if self.init_channels % self.k:
            raise ConfigError(f"K={self.k} does not divide init channels {self.init_channels}: pick C divisible by K")
        if self.recompute != "none" and self.unrolled:
            raise ConfigError(
                "--recompute works with the first-order search only (the unrolled step evaluates the network at "
                "virtual weights): drop --unrolled or use --recompute none"
            )
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(
                f"warm-up epochs ({self.warmup_epochs}) must be >= 0 and below epochs ({self.epochs}): "
                "otherwise alpha/beta never move"
            )
        if not 0.0 < self.train_portion < 1.0:
            raise ConfigError(f"train portion must be in (0, 1), got {self.train_portion}")
        if self.arch_lr < 0:
            raise ConfigError(f"arch lr must be >= 0, got {self.arch_lr}")
        if not 0 <= self.lr_min <= self.lr:
            raise ConfigError(f"lr min must be between 0 and lr ({self.lr}), got {self.lr_min}")
        if not (0 <= self.arch_beta1 < 1 and 0 <= self.arch_beta2 < 1):
            raise ConfigError(f"arch betas must be in [0, 1), got ({self.arch_beta1}, {self.arch_beta2})")
        if self.arch_grad_clip < 0:
            raise ConfigError(f"arch grad clip must be >= 0 (0: off), got {self.arch_grad_clip}")
        if not 0 <= self.lr_warmup_epochs < self.epochs:
            raise ConfigError(
                f"lr warm-up epochs ({self.lr_warmup_epochs}) must be >= 0 and below epochs ({self.epochs})"
            )
        if self.arch_weight_decay < 0:
            raise ConfigError(f"arch weight decay must be >= 0, got {self.arch_weight_decay}")


@dataclass(frozen=True)
class TrainConfig:
    genotype: str = "PC_DARTS_cifar"  # built-in name, genotype.json, a run folder, or Genotype(...) text
    dataset: str = "digits"
    data: str | None = None  # folder or archive for datasets read from disk
    download: bool = False  # fetch and verify the archive (CIFAR) when --data lacks it
    workers: int = 4  # DataLoader processes for image folders
    image_size: int = 0  # resize the dataset to this side (0 = its size; digits are upscaled to 16, folders at most 64)
    train_images: int = 0  # 0: the whole train split; N: a fixed per-class subset of N images
    holdout_images: int = 0  # N: pick the shipped epoch on N train images set aside first (replaces --val-fraction)
    val_fraction: float = 0.1  # per-class share of train images held out to pick the shipped epoch; 0: the last
    init_channels: int = 36  # paper CIFAR-10: 36; ImageNet: 48
    max_macs: int = 0  # the largest even init channels within N multiply-adds (600M: the mobile setting); 0 off
    layers: int = 20  # paper CIFAR-10: 20; ImageNet: 14
    stem: str = "cifar"  # cifar (3x3 conv) or imagenet (three stride-2 convs)
    auxiliary: bool = True  # auxiliary classifier head after the second reduction (paper: on)
    auxiliary_weight: float = 0.4  # weight of the auxiliary loss (paper 0.4)
    drop_path: float = 0.3  # final value of the linear ramp from 0
    epochs: int = 600  # training epochs (paper: 600 on CIFAR-10)
    batch_size: int = 96  # images per step (global under torchrun)
    lr: float = 0.025  # SGD lr, cosine-annealed (or linear for ImageNet)
    schedule: str = "cosine"  # 'cosine' to 0, or 'linear' decay after warm-up (ImageNet)
    lr_lag: bool = False  # cosine: run epoch e at the lr of e + 1, as the official code's scheduler does
    lr_warmup_epochs: int = 0  # linear lr warm-up epochs (0 off)
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 3e-4  # SGD weight decay
    grad_clip: float = 5.0  # grad-norm clip
    label_smoothing: float = 0.0  # label smoothing of the loss (ImageNet: 0.1)
    crop_padding: int = -1  # random-crop padding; -1: the dataset's default
    flip: bool | None = None  # random horizontal flips; unset: the dataset's default
    cutout: int = 16  # cutout square side in pixels; 0 off
    seed: int = 0  # seed of weights, data order and augmentation
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    deterministic: bool = False  # deterministic kernels (slower; exact repeats on GPU)
    threads: int = 0  # CPU intra-op threads (0: torch's default, fewer on a busy machine without OMP_NUM_THREADS)
    precision: str = "fp32"  # fp32, bf16 (autocast) or fp16 (autocast + grad scaling; CUDA)
    compile: bool = False  # torch.compile the network (minutes of compiling first; slower than eager on CPU)
    memory_format: str = "auto"  # auto: channels_last on CPU (measured faster), contiguous on CUDA; or either by name

    @classmethod
    def for_dataset(cls, dataset: str, *, cell: str | None = None, **overrides: Any) -> TrainConfig:
        """The configuration the CLI gives for ``dataset`` (its laptop-sized defaults), with ``overrides`` on top.

        ``cell``: the cell space of the genotype it will train (darts or nasbench201), where ``genotype`` is
        not among the overrides (a genotype passed to ``run_train`` instead)."""
        return resolve_config(cls, dataset, overrides, cell=cell)

    def __post_init__(self) -> None:
        _check_common(self)
        if self.init_channels % 2:
            raise ConfigError(f"init channels must be even, got {self.init_channels}")
        if self.max_macs < 0:
            raise ConfigError(f"max macs must be >= 0 (0: off), got {self.max_macs}")
        if self.auxiliary_weight < 0:
            raise ConfigError(f"auxiliary weight must be >= 0, got {self.auxiliary_weight}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ConfigError(f"drop path must be in [0, 1), got {self.drop_path}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.lr_warmup_epochs < 0 or (self.lr_warmup_epochs and self.lr_warmup_epochs >= self.epochs):
            raise ConfigError(f"lr warm-up epochs ({self.lr_warmup_epochs}) must be below epochs ({self.epochs})")


def memory_format_for(name: str, device: Any) -> Any:
    """The tensor layout a training uses: ``auto`` is channels_last where it was measured faster (CPU)."""
    import torch

    if name == "auto":
        name = "channels_last" if torch.device(device).type == "cpu" else "contiguous"
    return torch.channels_last if name == "channels_last" else torch.contiguous_format


MAX_LAYERS, MAX_CHANNELS, MAX_IMAGE, MAX_BATCH = 100, 4096, 2048, 1 << 20  # beyond these nothing fits anywhere


MAX_EPOCHS, MAX_THREADS = 10_000, 1024  # beyond any published protocol / any machine (100,000 threads crashed)


MAX_SEED, MAX_PADDING, MAX_WORKERS = 2**32 - 1, 256, 256  # numpy's seed range; padding of 3,000 px asked for 13.8 GB


def check_shape(
    *, init_channels: int, layers: int, num_classes: int, batch: int = 1, size: int = 8, in_channels: int = 3
) -> None:
    """Refuse network shapes that cannot be built (or would take hours to build) before building them."""
    checks = [
        ("init channels", init_channels, 2, MAX_CHANNELS),
        ("layers", layers, 3, MAX_LAYERS),
        ("num classes", num_classes, 1, 1 << 20),
        ("batch size", batch, 1, MAX_BATCH),
        ("size", size, 4, MAX_IMAGE),
        ("in channels", in_channels, 1, MAX_CHANNELS),
    ]
    for name, value, low, high in checks:
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low} and {high}, got {value}")


def _check_common(cfg: Any) -> None:
    """Checks both configs share; every float must be finite (a NaN lr would fail minutes later)."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if f.name in CHOICES:
            check_choice(f.name, value)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{f.name.replace('_', ' ')} must be a finite number, got {value}")
    if not 1 <= cfg.epochs <= MAX_EPOCHS:
        raise ConfigError(
            f"epochs must be between 1 and {MAX_EPOCHS:,} (the paper trains 600; more would run for years), "
            f"got {cfg.epochs}"
        )
    if not 1 <= cfg.batch_size <= MAX_BATCH:
        raise ConfigError(f"batch size must be >= 1 and <= {MAX_BATCH}, got {cfg.batch_size}")
    if cfg.layers < 3:
        raise ConfigError(f"layers must be >= 3 (two reduction cells plus a normal one), got {cfg.layers}")
    if cfg.layers > MAX_LAYERS:
        raise ConfigError(f"layers must be <= {MAX_LAYERS}, got {cfg.layers}")
    if not 2 <= cfg.init_channels <= MAX_CHANNELS:
        raise ConfigError(f"init channels must be >= 2 and <= {MAX_CHANNELS}, got {cfg.init_channels}")
    if cfg.lr <= 0:
        raise ConfigError(f"lr must be > 0, got {cfg.lr}")
    if not 0.0 <= cfg.momentum < 1.0:
        raise ConfigError(f"momentum must be in [0, 1), got {cfg.momentum}")
    if cfg.weight_decay < 0:
        raise ConfigError(f"weight decay must be >= 0, got {cfg.weight_decay}")
    if cfg.grad_clip <= 0:
        raise ConfigError(f"grad clip must be > 0, got {cfg.grad_clip}")
    if not 0 <= cfg.image_size <= MAX_IMAGE:
        raise ConfigError(f"image size must be 0 (native) or at most {MAX_IMAGE}, got {cfg.image_size}")
    if cfg.train_images < 0:
        raise ConfigError(f"train images must be >= 0 (0: all), got {cfg.train_images}")
    if cfg.holdout_images < 0:
        raise ConfigError(f"hold-out images must be >= 0 (0: none), got {cfg.holdout_images}")
    if not 0 <= cfg.threads <= MAX_THREADS:
        raise ConfigError(f"threads must be between 0 (torch's default) and {MAX_THREADS}, got {cfg.threads}")
    if cfg.workers < 0:
        raise ConfigError(f"workers must be >= 0, got {cfg.workers}")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError(f"seed must be between 0 and {MAX_SEED:,} (2**32 - 1, what numpy accepts), got {cfg.seed}")
    if not 0 <= cfg.cutout <= MAX_IMAGE:
        raise ConfigError(f"cutout must be between 0 (off) and {MAX_IMAGE} pixels, got {cfg.cutout}")
    if not -1 <= cfg.crop_padding <= MAX_PADDING:
        raise ConfigError(
            f"crop padding must be between 0 and {MAX_PADDING} pixels (-1: the dataset's default), got "
            f"{cfg.crop_padding}: random crops pad a few pixels (4 on 32x32 images)"
        )
    if cfg.workers > MAX_WORKERS:
        raise ConfigError(f"workers must be <= {MAX_WORKERS}, got {cfg.workers}")
    if cfg.device != "auto" and not re.fullmatch(r"cpu|cuda(:\d+)?", cfg.device):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}")


C = TypeVar("C", SearchConfig, TrainConfig)


PAPER_WARMUP_SHARE = 15 / 50  # PC-DARTS: alpha/beta frozen for the first 15 of 50 search epochs


def resolve_config(
    cls: type[C],
    dataset: str,
    overrides: dict[str, Any],
    preset: dict[str, Any] | None = None,
    saved: dict[str, Any] | None = None,
    *,
    cell: str | None = None,
) -> C:
    """Paper defaults < the cell's defaults < per-dataset defaults < preset < a resumed run's saved config <
    explicit values.

    ``None`` in ``overrides`` means unset. When a search's epochs are set and its warm-up is not, the
    warm-up keeps the preset's share of the epochs, else the paper's (15 of 50), so any epoch count works.
    ``cell`` is the cell a training builds (a TrainConfig has none: its genotype says it; None: the
    genotype's, else darts); a search's is its own setting. The nasbench201 network counts its depth in
    whole stages: a depth from the defaults is rounded up to one, a depth given that is not one is refused.
    """
    from .presets import CELL_DEFAULTS, DATASET_DEFAULTS

    kind = "search" if cls is SearchConfig else "train"
    explicit = {k: v for k, v in overrides.items() if v is not None}
    layered = [DATASET_DEFAULTS[kind].get(dataset, {}), preset or {}, saved or {}, explicit]
    if kind == "search":
        cell = next((d["cell"] for d in reversed(layered) if d.get("cell")), SearchConfig.cell)
    elif cell is None:
        spec = next((d["genotype"] for d in reversed(layered) if d.get("genotype")), TrainConfig.genotype)
        cell = genotype_cell(spec)
    values: dict[str, Any] = dict(CELL_DEFAULTS.get(cell, {}).get(kind, {}))
    values.update(DATASET_DEFAULTS[kind].get(dataset, {}))
    values.update(preset or {})
    values.update({k: v for k, v in (saved or {}).items() if k not in ("kind", "genotype_resolved")})
    values.update(explicit)
    if "space" in explicit and "ops" not in explicit:  # a space named now replaces an op list from below
        values["ops"] = ()
    values["dataset"] = dataset
    if kind == "search" and "epochs" in explicit and "warmup_epochs" not in explicit and not saved:
        epochs, share, whose = int(explicit["epochs"]), PAPER_WARMUP_SHARE, "the paper's 15 of 50"
        if preset and "warmup_epochs" in preset and preset.get("epochs"):  # the protocol's own share
            share = preset["warmup_epochs"] / preset["epochs"]
            whose = f"the preset's {preset['warmup_epochs']} of {preset['epochs']}"
        values["warmup_epochs"] = max(0, min(epochs - 1, round(epochs * share)))
        log.info("warm-up: %d of %d epochs (%s; set --warmup-epochs to choose)",
                 values["warmup_epochs"], epochs, whose)  # fmt: skip
    if cell == "nasbench201":
        from ..nas.nb201 import check_layers, whole_stages

        layers = int(values.get("layers", cls.layers))
        if "layers" in explicit:
            check_layers(layers)
        elif layers % 3:  # three stages of N cells: a default depth rounded up to whole stages
            values["layers"] = whole_stages(layers)
            log.info("nasbench201 network: %d cells (N=%d per stage; set --layers to choose)",
                     values["layers"], values["layers"] // 3)  # fmt: skip
    if kind == "train" and explicit.get("val_fraction") and values.get("holdout_images"):
        raise ConfigError(
            "--holdout-images picks the shipped epoch on its own images, so --val-fraction would be unused: "
            "give one of the two"
        )
    names = {f.name for f in fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown {kind} settings: {', '.join(sorted(unknown))}")
    return cls(**values)


def genotype_cell(spec: Any) -> str:
    """The cell space of a training's ``--genotype`` (darts or nasbench201) without building anything; a spec
    that does not load is darts here (the training that reads it says why it does not load)."""
    from ..errors import PCDartsError
    from .artifacts import load_genotype

    if not isinstance(spec, str):
        return getattr(spec, "cell", "darts")
    try:
        return getattr(load_genotype(spec), "cell", "darts")
    except PCDartsError:
        return "darts"


def field_docs(cls: type) -> dict[str, str]:
    """The comment after each field in the class source: the one description the CLI's --help shows."""
    import inspect

    docs = {}
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+(\w+): [^#]*#\s*(.+)$", line)
        if m:
            docs[m.group(1)] = m.group(2).strip()
    return docs


def plausible_setting(annotation: Any, value: Any) -> bool:
    """Whether a value read back from a run's config.json fits its field's declared type (a string annotation):
    a hand-edited or damaged config is not resumed with."""
    t = str(annotation)
    if isinstance(value, bool):
        return "bool" in t
    if isinstance(value, int):
        return "int" in t or "float" in t
    if isinstance(value, float):
        return "float" in t
    if isinstance(value, (list, tuple)):  # a tuple setting (the op list): a list in JSON, a tuple in checkpoint.pt
        return t.startswith("tuple[str") and all(isinstance(v, str) for v in value)
    if isinstance(value, str):
        return "str" in t and not t.startswith("tuple")
    return False


def build_search_network(cfg: SearchConfig, *, num_classes: int, in_channels: int, **overrides: Any) -> Any:
    """The supernet a ``SearchConfig`` describes (its ``cell``: the DARTS cell's or NAS-Bench-201's).

    The one place the config's fields become constructor arguments; ``overrides`` replace any of them.
    """
    from ..nas.candidates import op_space
    from ..nas.nb201_search import CELL, NB201SearchNetwork
    from ..nas.supernet import SearchNetwork

    kwargs: dict[str, Any] = dict(
        num_classes=num_classes,
        in_channels=in_channels,
        init_channels=cfg.init_channels,
        layers=cfg.layers,
        k=cfg.k,
        edge_norm=cfg.edge_norm,
        partial_mode=cfg.partial_mode,
        recompute=cfg.recompute,
        space=op_space(cfg.space, cfg.ops),
    )
    if getattr(cfg, "cell", "darts") != CELL:
        return SearchNetwork(**{**kwargs, "stem": cfg.stem, **overrides})
    if cfg.stem != "cifar":
        raise ConfigError(f"the {CELL} supernet has its own 3x3 conv stem: drop --stem {cfg.stem}")
    return NB201SearchNetwork(**{**kwargs, **overrides})
