"""The argument parser of the ``pcdarts`` command; config flags and their help come from the config fields."""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import MISSING, fields
from typing import Any

from ..choices import CHOICES
from ..runs.config import SearchConfig, TrainConfig, field_docs
from ..runs.presets import DATASET_DEFAULTS

GENOTYPE_HELP = "built-in name, genotype.json, a run folder, or Genotype(...) text"


# --help lists a command's settings in these groups, in this order; a field not named here goes under "other".
GROUPS: dict[str, tuple[str, ...]] = {
    "data": ("dataset", "data", "download", "subset", "workers", "image_size", "train_images", "holdout_images",
             "train_portion", "val_fraction", "crop_padding", "flip", "cutout"),
    "network": ("genotype", "init_channels", "max_macs", "layers", "stem", "auxiliary", "auxiliary_weight",
                "drop_path"),
    "supernet and search space": ("cell", "k", "partial_mode", "edge_norm", "space", "ops", "recompute"),
    "optimisation": ("epochs", "warmup_epochs", "batch_size", "lr", "lr_min", "schedule", "lr_warmup_epochs", "lr_lag",
                     "momentum", "weight_decay", "grad_clip", "label_smoothing"),
    "architecture step (alpha and beta)": ("arch_lr", "arch_beta1", "arch_beta2", "arch_weight_decay",
                                           "arch_grad_clip", "unrolled"),
    "collapse remedies (off by default)": ("max_param_free", "max_param_free_reduce", "early_stop_param_free",
                                           "early_stop_stable", "beta_decay"),
    "device and run": ("seed", "device", "deterministic", "threads", "precision", "compile", "memory_format"),
}  # fmt: skip
_SHOWN_DEFAULT = {  # defaults that are a rule, not a value
    "crop_padding": "the dataset's: 1/8 of the image side, 4 px at 32, 2 on digits",
    "flip": "the dataset's: on, off for digits and MNIST",
    "ops": "the space's ops",
    "threads": "chosen from the machine's load",
}


def _groups(p: argparse.ArgumentParser, cls: type) -> dict[str, Any]:
    """Argument groups for ``cls``'s fields, in ``GROUPS`` order (only the groups it has fields in)."""
    names = {f.name for f in fields(cls)}
    out = {}
    for title, members in GROUPS.items():
        if names & set(members):
            out[title] = p.add_argument_group(f"{title} settings")
    return out


def _group_of(name: str, groups: dict[str, Any], p: argparse.ArgumentParser) -> Any:
    for title, members in GROUPS.items():
        if name in members and title in groups:
            return groups[title]
    return groups.setdefault("other", p.add_argument_group("other settings"))


def _add_config_flags(p: argparse.ArgumentParser, cls: type, skip: set[str]) -> None:
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    groups = _groups(p, cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        g = _group_of(f.name, groups, p)
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        kind = "search" if cls is SearchConfig else "train"
        per_dataset = "".join(
            f"; {name}: {values[f.name]}" for name, values in DATASET_DEFAULTS[kind].items() if f.name in values
        )
        help_text = docs.get(f.name, "")
        shown = f"default {_SHOWN_DEFAULT.get(f.name, default)}{per_dataset}".replace("%", "%%")
        help_text = f"{help_text} ({shown})" if help_text else shown
        hint = hints[f.name]
        args = typing.get_args(hint)
        base = next((a for a in args if a is not type(None)), hint) if isinstance(hint, types.UnionType) else hint
        if cls is SearchConfig and f.name == "batch_size":  # a number, or planned from the memory there is
            help_text = "global batch for both steps, or 'auto': the largest that fits, lr scaled linearly; " + shown
            g.add_argument(flag, type=_batch, default=None, metavar="N|auto", help=help_text)
        elif f.name == "max_macs":  # 600M, 1.5G or a plain number
            g.add_argument(flag, type=_count, default=None, metavar="N[K|M|G]", help=help_text)
        elif base is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(base) is tuple:  # a list setting: comma-separated on the command line
            g.add_argument(flag, type=_comma_list, default=None, metavar="A,B,...", help=help_text)
        elif f.name in CHOICES:
            g.add_argument(flag, default=None, metavar="{" + ",".join(CHOICES[f.name]) + "}", help=help_text)
        else:
            g.add_argument(flag, type=base, default=None, metavar=f.name.upper(), help=help_text)


def _count(text: str) -> int:
    """``600M``, ``1.5G``, ``250K`` or a plain number, as an int."""
    scale = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text.strip()[-1:].upper(), 1)
    number = text.strip()[:-1] if scale > 1 else text.strip()
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (e.g. 600M)") from None
    if not 0 <= value < 1e15:
        raise argparse.ArgumentTypeError(f"out of range: {text!r}")
    return int(value)


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _overrides(ns: argparse.Namespace, cls: type) -> dict[str, Any]:
    return {f.name: getattr(ns, f.name) for f in fields(cls) if f.name != "dataset" and hasattr(ns, f.name)}


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="run folder for checkpoints, metrics and results (required to run)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument(
        "--extend", action="store_true", help="with --resume and --epochs N: take a run on to N epochs in all"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    p.add_argument("--preset", default=None, help="a named protocol, e.g. 'paper'")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON on stdout instead of a summary (search: its genotype)",
    )


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="pcdarts", description="PC-DARTS architecture search, training and deployment", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"pcdarts {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("search", help="search a cell with PC-DARTS and write genotype.json")
    s.add_argument(
        "--dataset",
        default=None,
        help="digits (default), synthetic, fashion-mnist, mnist, cifar10, "
        "cifar100, imagenet, folder; a resumed run keeps its own",
    )
    _run_flags(s)
    _add_config_flags(s, SearchConfig, {"dataset"})

    t = sub.add_parser("train", help="train a genotype's network from scratch and evaluate it")
    t.add_argument(
        "--dataset",
        default=None,
        help="digits (default), synthetic, fashion-mnist, mnist, cifar10, "
        "cifar100, imagenet, folder; a resumed run keeps its own",
    )
    _run_flags(t)
    _add_config_flags(t, TrainConfig, {"dataset"})

    e = sub.add_parser("eval", help="re-evaluate a trained checkpoint on a dataset's test split")
    e.add_argument("--checkpoint", required=True, help="best.pt / last.pt, or a train run folder")
    e.add_argument("--dataset", default=None, help="defaults to the dataset the model was trained on")
    e.add_argument("--data", default=None)
    e.add_argument("--device", default="auto")
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--json", action="store_true")

    i = sub.add_parser("info", help="parameters and multiply-adds of a genotype's network")
    i.add_argument("--genotype", required=True, help=GENOTYPE_HELP)
    i.add_argument(
        "--dataset",
        default=None,
        help="the network's shape for cifar10 (the default), cifar100, imagenet, digits, fashion-mnist, mnist, folder "
        "or synthetic; a trained run's own shape when --genotype is a training run folder",
    )
    i.add_argument("--init-channels", type=int, default=None)
    i.add_argument("--layers", type=int, default=None)
    i.add_argument("--num-classes", type=int, default=None)
    i.add_argument("--json", action="store_true")

    pn = sub.add_parser(
        "plan",
        help="what a search will cost: peak memory for K = 1, 2, 4, 8, and with --dataset or --preset the whole "
        "search's time from a few measured steps",
    )
    pn.add_argument("--dataset", default=None, help="plan this dataset's search (its shape and defaults; no data read)")
    pn.add_argument("--preset", default=None, help="plan a preset's search (e.g. paper)")
    pn.add_argument("--cell", default=None, choices=CHOICES["cell"], help="the cell space (default darts)")
    pn.add_argument("--epochs", type=int, default=None, help="search epochs (with --dataset / --preset)")
    pn.add_argument("--device", default="auto", help="where to measure the steps (auto, cpu, cuda, cuda:N)")
    pn.add_argument("--no-time", action="store_true", help="memory only: measure no steps")
    pn.add_argument("--batch-size", type=int, default=None, help=f"default {SearchConfig.batch_size}")
    pn.add_argument("--init-channels", type=int, default=None, help=f"default {SearchConfig.init_channels}")
    pn.add_argument("--layers", type=int, default=None, help=f"default {SearchConfig.layers}")
    pn.add_argument("--in-channels", type=int, default=None, help="default 3 (without --dataset)")
    pn.add_argument("--size", type=int, default=None, help="image side (without --dataset; default 32)")
    pn.add_argument("--num-classes", type=int, default=None, help="default 10 (without --dataset)")
    pn.add_argument("--image-size", type=int, default=None, help="with --dataset: the side the search resizes to")
    pn.add_argument("--k", type=int, default=None, help="with --dataset: the search's K (timed; default 4)")
    pn.add_argument("--warmup-epochs", type=int, default=None, help="with --dataset: warm-up epochs")
    pn.add_argument("--train-images", type=int, default=None, help="with --dataset: a per-class subset of N")
    pn.add_argument("--holdout-images", type=int, default=None, help="with --dataset: images set aside first")
    pn.add_argument("--stem", default=None, choices=CHOICES["stem"])
    pn.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    pn.add_argument("--space", default=None, help="the candidate ops: darts or nb201 (default auto: the cell's own)")
    pn.add_argument("--ops", type=_comma_list, default=(), metavar="A,B,...", help="ops of your own instead of --space")
    pn.add_argument(
        "--recompute",
        default=None,
        choices=CHOICES["recompute"],
        help="activation checkpointing mode",
    )
    pn.add_argument("--json", action="store_true")

    g = sub.add_parser("genotypes", help="list the built-in genotypes")
    g.add_argument("--json", action="store_true")

    d = sub.add_parser("demo", help="search, train the found cell and a random cell, evaluate, summarise (digits)")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--overwrite", action="store_true", help="start again, replacing an earlier demo in --out")
    d.add_argument("--resume", action="store_true", help="continue a stopped demo: each part where it stopped")
    d.add_argument("--no-progress", action="store_true")
    d.add_argument("--no-random", action="store_true", help="skip the random-genotype control")
    d.add_argument("--search-epochs", type=int, default=None)
    d.add_argument("--train-epochs", type=int, default=None)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--threads", type=int, default=0)
    st = sub.add_parser("study", help="searched cells against random cells, trained identically (resumable)")
    st.add_argument("--out", required=True, help="the study folder; the same command again continues it")
    st.add_argument("--config", default=None, help="the study's protocol file, e.g. studies/study3.toml")
    st.add_argument(
        "--preset", default=None, help="old name of a protocol file: fmnist-cpu, fmnist-study2, fmnist-study3"
    )
    st.add_argument("--dataset", default=None, help="any dataset pcdarts reads (default fashion-mnist)")
    st.add_argument("--data", default=None, help="where the dataset's files are")
    st.add_argument(
        "--arm",
        action="append",
        default=None,
        metavar="NAME[:KEY=VALUE,...]",
        help="a search configuration, e.g. pcdarts, k1:k=1, cap2:max_param_free=2 (repeatable)",
    )
    st.add_argument("--searches", type=int, default=None, help="searches (seeds 0..S-1) per arm (default 3)")
    st.add_argument("--random", type=int, default=None, dest="random_cells", help="random cells (default 5)")
    st.add_argument("--train-seed", type=int, default=None, help="the one training seed of every cell (default 0)")
    st.add_argument("--primary", default=None, help="the pre-registered arm whose comparison is the verdict")
    st.add_argument(
        "--rule",
        default=None,
        choices=["effect", "superiority"],
        help="the verdict's rule: effect (p < 0.05 and >= 1 random SD; default) or superiority (p < 0.05 and a "
        "searched cell beats a random one in >= 3 of 4 pairs)",
    )
    st.add_argument(
        "--retrain-random", type=int, default=None, help="train the first N random cells again with training seed + 1"
    )
    st.add_argument(
        "--oneshot-arm",
        default=None,
        help="this arm's supernets also score every random cell with their own weights (nasbench201 cell)",
    )
    st.add_argument("--search-set", action="append", default=[], metavar="KEY=VALUE", help="base search setting")
    st.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE", help="training setting")
    st.add_argument(
        "--budget-from",
        default=None,
        metavar="DIR",
        help="take the training epochs from the calibration in DIR (pcdarts fidelity's budget rule); until it is "
        "finished the searches and selections run and the trainings wait",
    )
    st.add_argument("--threads", type=int, default=0, help="intra-op threads of every sub-run (0: torch's default)")
    st.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved study (each arm's search and selection, the training, the units in order) and exit",
    )
    st.add_argument(
        "--status",
        action="store_true",
        help="where the study in --out stands (units finished per arm, runs in progress, time left; no result) "
        "and exit",
    )
    st.add_argument("--no-progress", action="store_true")

    se = sub.add_parser(
        "select", help="read the cell off a finished search by perturbation (DARTS-PT) instead of the largest alpha"
    )
    se.add_argument("--run", required=True, help="a finished search run folder (with checkpoint.pt)")
    se.add_argument("--method", default="pt", choices=["pt"], help="pt: perturbation-based selection (DARTS-PT)")
    se.add_argument("--out", default=None, help="where the selection goes (default RUN/select-<settings>)")
    se.add_argument(
        "--tune-epochs",
        type=float,
        default=10.0,
        help="fine-tuning epochs between two decisions (default 10, the paper's; fewer is cheaper)",
    )
    se.add_argument(
        "--score-batches",
        type=int,
        default=0,
        help="arch-split batches (of the search's batch size) that score each candidate (default 0: all, as the paper)",
    )
    se.add_argument("--seed", type=int, default=0, help="the order in which edges and nodes are decided")
    se.add_argument("--device", default="auto")
    se.add_argument("--threads", type=int, default=0)
    se.add_argument("--json", action="store_true", help="print the result as JSON")
    se.add_argument("--no-progress", action="store_true")

    fi = sub.add_parser(
        "fidelity", help="how long must cells train to be ranked? random cells at several epoch budgets (resumable)"
    )
    fi.add_argument("--out", required=True, help="the calibration folder (a study in it reuses its trainings)")
    fi.add_argument("--config", default=None, help="the calibration's protocol file: studies/study2-calibration.toml")
    fi.add_argument("--preset", default=None, help="old name of a protocol file: fmnist-study2")
    fi.add_argument("--dataset", default=None, help="any dataset pcdarts reads (default fashion-mnist)")
    fi.add_argument("--data", default=None, help="where the dataset's files are")
    fi.add_argument("--cells", type=int, default=None, help="random cells, seeds 0..N-1 (default 12)")
    fi.add_argument("--budgets", default=None, metavar="E1,E2,...", help="training epochs to compare (default 8,16,32)")
    fi.add_argument("--seed-cells", type=int, default=None, help="cells trained again with a second seed (default 4)")
    fi.add_argument("--seed-budget", type=int, default=None, help="epochs of the second-seed runs (default: longest)")
    fi.add_argument("--train-seed", type=int, default=None, help="the first training seed (default 0)")
    fi.add_argument(
        "--cell",
        default=None,
        choices=["darts", "nasbench201"],
        help="the cell space of the random cells (default darts; nasbench201: uniform over its 15,625 cells)",
    )
    fi.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE", help="training setting")
    fi.add_argument("--threads", type=int, default=0, help="intra-op threads of every training (0: torch's default)")
    fi.add_argument(
        "--summary-only",
        action="store_true",
        help="write fidelity.json and fidelity.png from the trainings finished so far; train nothing",
    )
    fi.add_argument("--no-progress", action="store_true")

    x = sub.add_parser("export", help="export a trained network to ONNX, TorchScript or torch.export")
    x.add_argument("--checkpoint", required=True, help="best.pt / last.pt, or a train run folder")
    x.add_argument("--format", required=True, choices=["onnx", "torchscript", "exported"])
    x.add_argument("--out", required=True, help="the model file; its metadata goes beside it as OUT.json")
    x.add_argument("--overwrite", action="store_true", help="replace an existing OUT and OUT.json")
    x.add_argument("--no-check", action="store_true", help="skip comparing the export with PyTorch's logits")
    x.add_argument("--json", action="store_true", help="print the export report as JSON")

    dv = sub.add_parser(
        "derive", help="read the cell off a search run again, optionally under the P-DARTS cap (no retraining)"
    )
    dv.add_argument("run", help="a search run folder (or its arch.json)")
    dv.add_argument("--max-param-free", type=int, default=None, help="at most N parameter-free ops in the normal cell")
    dv.add_argument(
        "--max-param-free-reduce", type=int, default=None, help="at most N parameter-free ops in the reduction cell"
    )
    dv.add_argument("--out", default=None, help="write the genotype JSON here (train takes it with --genotype)")
    dv.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    dv.add_argument("--json", action="store_true", help="print the genotype as JSON")

    pr = sub.add_parser("predict", help="top-k classes of image files with a trained network")
    pr.add_argument("--checkpoint", required=True)
    pr.add_argument("images", nargs="+")
    pr.add_argument("--top-k", type=int, default=3)
    pr.add_argument("--json", action="store_true")

    pl = sub.add_parser("plot", help="draw a genotype's cells, or a search run's alpha/beta and timeline")
    pl.add_argument("--genotype", default=None, help=GENOTYPE_HELP)
    pl.add_argument("--run", default=None, help="a search run folder: also draw alpha/beta heatmaps and the timeline")
    pl.add_argument(
        "--epochs",
        type=int,
        nargs="*",
        default=None,
        help="epochs for the heatmaps, counted from 1 as the console does",
    )
    pl.add_argument("--out", required=True, help="cell.png, .svg or .pdf (with --run: a folder)")
    pl.add_argument("--renderer", choices=["auto", "graphviz", "matplotlib"], default="auto")
    pl.add_argument("--overwrite", action="store_true", help="replace pictures that exist")

    rp = sub.add_parser("report", help="write RUN_DIR/report.html with every picture embedded")
    rp.add_argument("run_dir")
    rp.add_argument("--out", default=None, help="where the page goes (default RUN_DIR/report.html, replaced each time)")
    rp.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    ss = sub.add_parser("subsample", help="write the paper's per-class ImageNet search subsets as a file list")
    ss.add_argument("--data", required=True, help="ImageNet root (train/<class>/...) or a class-folder tree")
    ss.add_argument("--train-fraction", type=float, default=0.1, help="share per class for the weights (paper 0.1)")
    ss.add_argument("--val-fraction", type=float, default=0.025, help="share per class for alpha/beta (paper 0.025)")
    ss.add_argument("--seed", type=int, default=0)
    ss.add_argument("--out", required=True, help="the JSON list to write")
    ss.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    # listed for `pcdarts --help`; main() hands `pcdarts bench ...` to pcdarts.bench before argparse sees it
    sub.add_parser("bench", help="benchmarks (see pcdarts bench --help)", add_help=False)
    _fill_help(parser)
    for command in sub.choices.values():  # --data is not an abbreviation of --dataset: every flag in full
        command.allow_abbrev = False
    return parser


# Help for the flags the commands share (their own add_argument gives none); the default is appended.
_FLAG_HELP = {
    "data": "folder or archive of the dataset's files",
    "device": "auto, cpu, cuda or cuda:N",
    "batch_size": "images per forward pass",
    "json": "print JSON on stdout instead of text",
    "init_channels": "C of the network",
    "layers": "cells in the network",
    "num_classes": "classes of the network's output",
    "in_channels": "image channels",
    "size": "image side in pixels",
    "stem": "cifar (3x3 conv) or imagenet (three stride-2 convs)",
    "ks": "the K values to plan for",
    "out": "where the output goes",
    "overwrite": "replace what is already in --out",
    "no_progress": "no progress bars",
    "search_epochs": "search epochs (digits default: 8)",
    "train_epochs": "training epochs of each cell (digits default: 12)",
    "seed": "random seed",
    "threads": "CPU intra-op threads (0: chosen from the machine's load)",
    "format": "onnx, torchscript or exported (torch.export)",
    "checkpoint": "best.pt / last.pt, or a train run folder",
    "top_k": "how many classes to print per image (at most the model's classes)",
    "renderer": "auto (Graphviz when dot is installed), graphviz or matplotlib",
    "images": "image files (any format Pillow reads)",
    "run_dir": "a search, training, study or calibration folder",
}


def _fill_help(parser: argparse.ArgumentParser) -> None:
    """Every flag of every command says what it does and its default (``--help``)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for sp in sub.choices.values():
        for a in sp._actions:
            if a.help not in (None, ""):
                continue
            text = _FLAG_HELP.get(a.dest, a.dest.replace("_", " "))
            if a.default not in (None, False, argparse.SUPPRESS) and not a.required:
                text += f" (default {a.default})"
            a.help = text


def _batch(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch size must be an integer or 'auto', got {value!r}") from None
