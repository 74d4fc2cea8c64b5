"""The ``pcdarts`` command. Only this module reads argv and owns the console."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from .config import DATASET_DEFAULTS, SearchConfig, TrainConfig, config_to_dict, field_docs, resolve_config
from .errors import ConfigError

log = logging.getLogger(__name__)

HELP = {
    "k": "partial channel proportion 1/K (paper 4; 1 = plain DARTS)",
    "edge_norm": "edge normalisation with beta (--no-edge-norm for the ablation)",
    "warmup_epochs": "epochs before alpha/beta start to move (paper 15 of 50)",
    "unrolled": "second-order (unrolled) DARTS arch step instead of first order",
    "batch_size": "global batch for both the weight and the arch step",
    "partial_mode": "shuffle (paper) or shift",
    "stem": "cifar (3x3 conv) or imagenet (three stride-2 convs)",
    "image_size": "resize the dataset to this side (0 = dataset default)",
    "threads": "CPU intra-op threads (0 = torch default)",
    "device": "auto, cpu, cuda or cuda:N",
    "genotype": "built-in name, genotype.json, a run folder, or Genotype(...) text",
    "compile": "torch.compile the network (minutes of compiling first; slower than eager on CPU as measured here)",
}


def _add_config_flags(p: argparse.ArgumentParser, cls: type, skip: set[str]) -> None:
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        kind = "search" if cls is SearchConfig else "train"
        per_dataset = "".join(
            f"; {name}: {values[f.name]}" for name, values in DATASET_DEFAULTS[kind].items() if f.name in values
        )
        help_text = HELP.get(f.name) or docs.get(f.name, "")
        shown = f"default {default}{per_dataset}".replace("%", "%%")
        help_text = f"{help_text} ({shown})" if help_text else shown
        hint = hints[f.name]
        args = typing.get_args(hint)
        base = next((a for a in args if a is not type(None)), hint) if isinstance(hint, types.UnionType) else hint
        if base is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            p.add_argument(flag, type=base, default=None, metavar=f.name.upper(), help=help_text)


def _overrides(ns: argparse.Namespace, cls: type) -> dict[str, Any]:
    return {f.name: getattr(ns, f.name) for f in fields(cls) if f.name != "dataset" and hasattr(ns, f.name)}


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="run folder for checkpoints, metrics and results (required to run)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    p.add_argument("--preset", default=None, help="a named protocol, e.g. 'paper'")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout instead of a summary")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="pcdarts", description="PC-DARTS architecture search, training and deployment"
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
    _add_config_flags(s, SearchConfig, {"dataset", "batch_size"})
    s.add_argument(
        "--batch-size",
        type=_batch,
        default=None,
        metavar="N|auto",
        help="global batch for both steps, or 'auto': the largest that fits, lr scaled linearly (paper: 256)",
    )

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
    i.add_argument("--genotype", required=True, help=HELP["genotype"])
    i.add_argument("--dataset", default="cifar10", help="cifar10, cifar100, imagenet, digits, or any dataset name")
    i.add_argument("--init-channels", type=int, default=None)
    i.add_argument("--layers", type=int, default=None)
    i.add_argument("--num-classes", type=int, default=None)
    i.add_argument("--json", action="store_true")

    pn = sub.add_parser("plan", help="predicted peak memory of a search step for K = 1, 2, 4, 8")
    pn.add_argument("--batch-size", type=int, default=256)
    pn.add_argument("--init-channels", type=int, default=16)
    pn.add_argument("--layers", type=int, default=8)
    pn.add_argument("--in-channels", type=int, default=3)
    pn.add_argument("--size", type=int, default=32)
    pn.add_argument("--num-classes", type=int, default=10)
    pn.add_argument("--stem", default="cifar", choices=["cifar", "imagenet"])
    pn.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    pn.add_argument(
        "--recompute", default="none", choices=["none", "edges", "cells"], help="activation checkpointing mode"
    )
    pn.add_argument("--json", action="store_true")

    g = sub.add_parser("genotypes", help="list the built-in genotypes")
    g.add_argument("--json", action="store_true")

    d = sub.add_parser("demo", help="search, train the found cell and a random cell, evaluate, summarise (digits)")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--overwrite", action="store_true")
    d.add_argument("--no-progress", action="store_true")
    d.add_argument("--no-random", action="store_true", help="skip the random-genotype control")
    d.add_argument("--search-epochs", type=int, default=None)
    d.add_argument("--train-epochs", type=int, default=None)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--threads", type=int, default=0)
    st = sub.add_parser("study", help="searched cells against random cells, trained identically (resumable)")
    st.add_argument("--out", required=True, help="the study folder; the same command again continues it")
    st.add_argument("--preset", default=None, help="a named study: fmnist-cpu (docs/STUDY.md)")
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
    st.add_argument("--search-set", action="append", default=[], metavar="KEY=VALUE", help="base search setting")
    st.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE", help="training setting")
    st.add_argument("--threads", type=int, default=0, help="intra-op threads of every sub-run (0: torch's default)")
    st.add_argument("--no-progress", action="store_true")

    x = sub.add_parser("export", help="export a trained network to ONNX, TorchScript or torch.export")
    x.add_argument("--checkpoint", required=True, help="best.pt / last.pt, or a train run folder")
    x.add_argument("--format", required=True, choices=["onnx", "torchscript", "exported"])
    x.add_argument("--out", required=True)
    x.add_argument("--no-check", action="store_true", help="skip comparing the export with PyTorch's logits")
    x.add_argument("--json", action="store_true", help="print the export report as JSON")

    pr = sub.add_parser("predict", help="top-k classes of image files with a trained network")
    pr.add_argument("--checkpoint", required=True)
    pr.add_argument("images", nargs="+")
    pr.add_argument("--top-k", type=int, default=3)
    pr.add_argument("--json", action="store_true")

    pl = sub.add_parser("plot", help="draw a genotype's cells, or a search run's alpha/beta and timeline")
    pl.add_argument("--genotype", default=None, help=HELP["genotype"])
    pl.add_argument("--run", default=None, help="a search run folder: also draw alpha/beta heatmaps and the timeline")
    pl.add_argument("--epochs", type=int, nargs="*", default=None, help="epochs for the heatmaps")
    pl.add_argument("--out", required=True, help="cell.png, .svg or .pdf (with --run: a folder)")
    pl.add_argument("--renderer", choices=["auto", "graphviz", "matplotlib"], default="auto")

    rp = sub.add_parser("report", help="write RUN_DIR/report.html with every picture embedded")
    rp.add_argument("run_dir")
    rp.add_argument("--out", default=None)

    ss = sub.add_parser("subsample", help="write the paper's per-class ImageNet search subsets as a file list")
    ss.add_argument("--data", required=True, help="ImageNet root (train/<class>/...) or a class-folder tree")
    ss.add_argument("--train-fraction", type=float, default=0.1, help="share per class for the weights (paper 0.1)")
    ss.add_argument("--val-fraction", type=float, default=0.025, help="share per class for alpha/beta (paper 0.025)")
    ss.add_argument("--seed", type=int, default=0)
    ss.add_argument("--out", required=True, help="the JSON list to write")

    # listed for `pcdarts --help`; main() hands `pcdarts bench ...` to pcdarts.bench before argparse sees it
    sub.add_parser("bench", help="benchmarks (see pcdarts bench --help)", add_help=False)
    return parser


# ---------------------------------------------------------------- commands
def _batch(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch size must be an integer or 'auto', got {value!r}") from None


AUTO_MIN_STEPS, AUTO_MAX_LR_SCALE = 8, 4.0


def _auto_batch(cfg: SearchConfig) -> SearchConfig:
    """``--batch-size auto``: the largest batch that fits, with the weight lr scaled linearly (as the paper does)."""
    from dataclasses import replace

    from .memory import auto_batch_size
    from .runner import load_data
    from .runs import pick_device

    ds = load_data(cfg)
    device = pick_device(cfg.device)
    batch, info = auto_batch_size(
        k=cfg.k,
        init_channels=cfg.init_channels,
        layers=cfg.layers,
        in_channels=ds.in_channels,
        size=ds.image_size[0],
        num_classes=ds.num_classes,
        device=device,
        stem=cfg.stem,
        recompute=cfg.recompute,
    )
    n = len(ds.train_x) if hasattr(ds, "train_x") else len(ds.train)
    # at least AUTO_MIN_STEPS steps an epoch (one giant step learns nothing), and the linear lr scaling capped
    batch = min(batch, max(8, int(n * cfg.train_portion) // AUTO_MIN_STEPS // 8 * 8))
    lr = cfg.lr * min(batch / cfg.batch_size, AUTO_MAX_LR_SCALE)
    logging.getLogger("pcdarts").info(
        "auto batch size %d (predicted %.0f MiB of %.0f MiB available); lr %.4g -> %.4g",
        batch,
        (info["per_sample_bytes"] * batch + info["state_bytes"]) / 2**20,
        info["available_bytes"] / 2**20,
        cfg.lr,
        lr,
    )
    return replace(cfg, batch_size=batch, lr=lr)


def _need_out(ns: argparse.Namespace) -> None:
    if not ns.out:
        raise ConfigError(f"pcdarts {ns.command} needs --out RUN_FOLDER (where checkpoints and results go)")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _saved_config(ns: argparse.Namespace) -> tuple[dict[str, Any] | None, str]:
    """With --resume, the run's own config.json is the base, so `--resume --out X` alone continues it."""
    saved = None
    if ns.resume and ns.out and (Path(ns.out) / "config.json").is_file():
        try:
            saved = json.loads((Path(ns.out) / "config.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError(f"{Path(ns.out) / 'config.json'} is unreadable: resume with every flag given") from None
    if saved is not None and "genotype_resolved" in saved and getattr(ns, "genotype", None) is None:
        saved["genotype"] = json.dumps(saved["genotype_resolved"])  # the cell the run trains, not how it was named
    dataset = ns.dataset or (saved or {}).get("dataset") or "digits"
    if saved is not None and saved.get("dataset") != dataset:
        saved = None  # another dataset: the resume check reports the difference
    return saved, dataset


def cmd_search(ns: argparse.Namespace) -> int:
    from .presets import preset_values
    from .search import run_search

    auto = ns.batch_size == "auto"
    if auto:
        ns.batch_size = None
    saved, dataset = _saved_config(ns)
    cfg = resolve_config(
        SearchConfig, dataset, _overrides(ns, SearchConfig), preset_values(ns.preset, "search", dataset), saved
    )
    if auto:
        cfg = _auto_batch(cfg)
    if ns.preset == "paper" and cfg.dataset == "imagenet" and not cfg.subset and not cfg.train_images:
        raise ConfigError(
            "the paper searches ImageNet on per-class subsets (10% weights, 2.5% arch): make them with "
            "`pcdarts subsample --data DIR --out subset.json` and pass --subset subset.json"
        )
    if ns.print_config:
        print(json.dumps(config_to_dict(cfg), indent=2))
        return 0
    _need_out(ns)
    result = run_search(cfg, ns.out, resume=ns.resume, overwrite=ns.overwrite, progress=not ns.no_progress)
    if not result["is_main"]:
        return 0
    if result["stopped"]:
        print(
            f"stopped after epoch {result['epochs_done']}; continue with: pcdarts search --resume --out {ns.out}",
            file=sys.stderr,
        )
        return 0
    if ns.json:
        print(json.dumps(result["genotype"]))
        return 0
    from .genotype import Genotype, param_free_count

    g = Genotype.from_dict(result["genotype"])
    stop = f" (DARTS+ stop: {result['early_stop']['reason']})" if result.get("early_stop") else ""
    print(
        f"search finished in {_minutes(result['seconds'])}{stop}; {param_free_count(g.normal)} of 8 normal-cell ops "
        f"are parameter-free\n{g.describe()}\n"
        f"files: {ns.out}/ (genotype.json, arch.json, metrics.jsonl, checkpoint.pt)\n"
        f"next: pcdarts train --genotype {ns.out} --dataset {cfg.dataset} --out {ns.out}-train"
    )
    return 0


def cmd_train(ns: argparse.Namespace) -> int:
    from .genotype import load_genotype
    from .presets import preset_values
    from .train import run_train

    saved, dataset = _saved_config(ns)
    cfg = resolve_config(
        TrainConfig, dataset, _overrides(ns, TrainConfig), preset_values(ns.preset, "train", dataset), saved
    )
    if ns.print_config:
        print(json.dumps(config_to_dict(cfg), indent=2))
        return 0
    _need_out(ns)
    genotype = load_genotype(cfg.genotype)
    log.info(
        "training genotype %s:\n%s", cfg.genotype if len(cfg.genotype) < 80 else "(given as text)", genotype.describe()
    )
    result = run_train(
        cfg, ns.out, resume=ns.resume, overwrite=ns.overwrite, progress=not ns.no_progress, genotype=genotype
    )
    if not result["is_main"]:
        return 0
    if result["stopped"]:
        print(f"stopped; continue with: pcdarts train --resume --out {ns.out}", file=sys.stderr)
        return 0
    keys = ("test_accuracy", "test_top5", "params", "macs", "epochs", "seconds", "selected_by", "selected_epoch")
    if ns.json:
        print(json.dumps({k: result[k] for k in keys}))
        return 0
    picked = (
        f"epoch {result['selected_epoch'] + 1} (best validation accuracy {result['val_accuracy']:.4f})"
        if result["selected_by"] == "val"
        else "the last epoch (no validation split)"
    )
    print(
        f"trained in {_minutes(result['seconds'])}: test accuracy {result['test_accuracy']:.4f} "
        f"({result['test_images']} images, read once) of the model from {picked}; {result['params']:,} params, "
        f"{result['macs'] / 1e6:.1f} M multiply-adds\n"
        f"files: {ns.out}/ ({result['shipped']}, result.json, metrics.jsonl)\n"
        f"next: pcdarts report {ns.out}   |   pcdarts export --checkpoint {ns.out} --format onnx --out model.onnx"
    )
    return 0


def cmd_eval(ns: argparse.Namespace) -> int:
    import torch

    from .data import get_dataset, holdout_part, make_stream
    from .engine import evaluate
    from .runs import pick_device
    from .train import load_model

    device = pick_device(ns.device)
    model = load_model(ns.checkpoint, map_location=device).to(device)
    meta = model.meta
    name = ns.dataset or meta["dataset"]
    kwargs: dict[str, Any] = {"image_size": int(meta["input_size"][0])}
    if ns.data:
        kwargs["data"] = ns.data
    ds = get_dataset(name, **kwargs)
    if ds.num_classes != len(meta["classes"]) or ds.in_channels != model.stem0[0].in_channels:  # type: ignore[index]
        raise ConfigError(
            f"the model was trained for {len(meta['classes'])} classes on {meta['dataset']}; "
            f"{name} has {ds.num_classes} classes and {ds.in_channels} channels"
        )
    stream = make_stream(
        ds,
        holdout_part(ds),
        ns.batch_size,
        train=False,
        device=device,
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
    )
    with torch.no_grad():
        stats = evaluate(model, stream)
    out = {
        "dataset": name,
        "test_accuracy": stats["top1"],
        "test_top5": stats["top5"],
        "test_loss": stats["loss"],
        "images": stats["n"],
    }
    if ns.json:
        print(json.dumps(out))
    else:
        print(
            f"{name}: top-1 {stats['top1']:.4f}  top-5 {stats['top5']:.4f}  loss {stats['loss']:.4f}  "
            f"({stats['n']} images)"
        )
    return 0


# Shapes for `info`: (in_channels, side, classes, stem, init_channels, layers) as each paper reports them.
INFO_SHAPES = {
    "cifar10": (3, 32, 10, "cifar", 36, 20),
    "cifar100": (3, 32, 100, "cifar", 36, 20),
    "imagenet": (3, 224, 1000, "imagenet", 48, 14),
    "digits": (1, 16, 10, "cifar", 16, 6),
    "synthetic": (3, 32, 10, "cifar", 8, 5),
}


def cmd_info(ns: argparse.Namespace) -> int:
    from .genotype import load_genotype
    from .network import build_network, count_macs, count_params

    genotype = load_genotype(ns.genotype)
    if ns.dataset not in INFO_SHAPES:
        raise ConfigError(f"unknown dataset {ns.dataset!r} for info; choose one of: {', '.join(INFO_SHAPES)}")
    cin, side, classes, stem, c, layers = INFO_SHAPES[ns.dataset]
    c = c if ns.init_channels is None else ns.init_channels
    layers = layers if ns.layers is None else ns.layers
    classes = classes if ns.num_classes is None else ns.num_classes
    _check_shape(init_channels=c, layers=layers, num_classes=classes)
    model = build_network(
        genotype, num_classes=classes, in_channels=cin, init_channels=c, layers=layers, auxiliary=False, stem=stem
    )
    params, macs = count_params(model), count_macs(model, (cin, side, side))
    out = {
        "params": params,
        "macs": macs,
        "dataset": ns.dataset,
        "input": [cin, side, side],
        "init_channels": c,
        "layers": layers,
        "num_classes": classes,
        "genotype": genotype.to_dict(),
    }
    if ns.json:
        print(json.dumps(out))
    else:
        print(
            f"{genotype.to_text()}\n{ns.dataset} (C={c}, {layers} cells, {side}x{side}): "
            f"{params:,} parameters (auxiliary head excluded), {macs / 1e6:.1f} M multiply-adds"
        )
    return 0


def _check_shape(*, init_channels: int, layers: int, num_classes: int, batch: int = 1, size: int = 8) -> None:
    """Refuse network shapes that cannot be built (or would take hours to build) before building them."""
    from .config import MAX_BATCH, MAX_CHANNELS, MAX_IMAGE, MAX_LAYERS

    checks = [
        ("init channels", init_channels, 2, MAX_CHANNELS),
        ("layers", layers, 3, MAX_LAYERS),
        ("num classes", num_classes, 1, 1 << 20),
        ("batch size", batch, 1, MAX_BATCH),
        ("size", size, 4, MAX_IMAGE),
    ]
    for name, value, low, high in checks:
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low} and {high}, got {value}")


def cmd_plan(ns: argparse.Namespace) -> int:
    from .memory import predict_peak

    _check_shape(
        init_channels=ns.init_channels, layers=ns.layers, num_classes=ns.num_classes, batch=ns.batch_size, size=ns.size
    )
    if ns.in_channels < 1:
        raise ConfigError(f"in channels must be >= 1, got {ns.in_channels}")
    bad = [k for k in ns.ks if k < 1 or ns.init_channels % k]
    if bad:
        raise ConfigError(f"every K must be >= 1 and divide init channels {ns.init_channels}; not {bad}")

    rows = [
        predict_peak(
            k=k,
            batch=ns.batch_size,
            init_channels=ns.init_channels,
            layers=ns.layers,
            in_channels=ns.in_channels,
            size=ns.size,
            num_classes=ns.num_classes,
            stem=ns.stem,
            recompute=ns.recompute,
        )
        for k in ns.ks
        if ns.init_channels % k == 0
    ]
    if ns.json:
        print(json.dumps(rows))
        return 0
    print(
        f"predicted search-step memory: C={ns.init_channels}, {ns.layers} cells, batch {ns.batch_size}, "
        f"{ns.in_channels}x{ns.size}x{ns.size}, recompute {ns.recompute}"
    )
    base = rows[0]["predicted_peak_bytes"] if rows and rows[0]["k"] == 1 else None
    for r in rows:
        ratio = f"  ({r['predicted_peak_bytes'] / base:.2f} of K=1)" if base else ""
        print(
            f"K={r['k']}: {r['predicted_peak_bytes'] / 2**20:9.1f} MiB  "
            f"(activations {r['activations_bytes'] / 2**20:.1f}, "
            f"weights+grads+momentum {r['state_bytes'] / 2**20:.1f}){ratio}"
        )
    return 0


def cmd_genotypes(ns: argparse.Namespace) -> int:
    from .genotype import GENOTYPES

    if ns.json:
        print(json.dumps({k: g.to_dict() for k, g in GENOTYPES.items()}, indent=2))
    else:
        for name, g in GENOTYPES.items():
            print(f"{name}: {g.to_text()}")
    return 0


def cmd_demo(ns: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = run_demo(
        ns.out,
        overwrite=ns.overwrite,
        progress=not ns.no_progress,
        random_control=not ns.no_random,
        search_epochs=ns.search_epochs,
        train_epochs=ns.train_epochs,
        seed=ns.seed,
        threads=ns.threads,
    )
    print(summary["text"])
    return 0


def cmd_export(ns: argparse.Namespace) -> int:
    from .export import export_model

    report = export_model(ns.checkpoint, ns.format, ns.out, check=not ns.no_check)
    if ns.json:
        print(json.dumps(report))
        return 0
    diff = report.get("max_abs_diff")
    check = f"; largest logit difference from PyTorch {diff:.2g}" if diff is not None else ""
    print(f"wrote {report['out']} ({report['format']}) and {report['out']}.json{check}")
    return 0


def cmd_predict(ns: argparse.Namespace) -> int:
    from .export import predict

    if ns.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {ns.top_k}")
    failed: list[str] = []

    def report(path: str, exc: Exception) -> None:  # one unreadable file fails alone; the rest go on
        failed.append(path)
        print(f"pcdarts predict: error: {exc}", file=sys.stderr)

    rows = predict(ns.checkpoint, ns.images, ns.top_k, on_error=report)
    if ns.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print(r["image"] + ": " + ", ".join(f"{t['class']} {t['probability']:.3f}" for t in r["top"]))
    if failed:
        if len(ns.images) > 1:
            print(f"pcdarts predict: {len(failed)} of {len(ns.images)} images could not be read", file=sys.stderr)
        return 2
    return 0


def cmd_plot(ns: argparse.Namespace) -> int:
    from .genotype import Genotype, load_genotype
    from .plot import alpha_heatmaps, curves, genotype_timeline, plot_genotype
    from .runs import read_jsonl

    if ns.run is None and ns.genotype is None:
        raise ConfigError("give --genotype G (cells) or --run SEARCH_DIR (cells, heatmaps, timeline, curves)")
    if ns.run is None:
        used = plot_genotype(load_genotype(ns.genotype), ns.out, renderer=ns.renderer)
        print(f"wrote {ns.out} ({used} renderer)")
        return 0
    run, out = Path(ns.run), Path(ns.out)
    history = read_jsonl(run / "arch_history.jsonl")
    if not history:
        raise ConfigError(f"{run} has no arch_history.jsonl: is it a search run folder?")
    out.mkdir(parents=True, exist_ok=True)
    if ns.genotype:
        genotype = load_genotype(ns.genotype)
    else:  # the final genotype, or the latest one of an unfinished search
        genotype = Genotype.from_dict(history[-1]["genotype"])
    used = plot_genotype(genotype, out / "cells.png", renderer=ns.renderer)
    alpha_heatmaps(history, out / "alpha_beta.png", ns.epochs)
    _, stable = genotype_timeline(history, out / "timeline.png")
    curves(read_jsonl(run / "metrics.jsonl"), out / "curves.png", "search")
    print(
        f"wrote cells.png ({used}), alpha_beta.png, timeline.png, curves.png to {out}; "
        f"genotype stable from epoch {None if stable is None else stable + 1}"
    )
    return 0


def cmd_study(ns: argparse.Namespace) -> int:
    from .study import STUDY_PRESETS, Arm, StudyConfig, format_table, plot_study, run_study, verdict

    values: dict[str, Any] = {}
    if ns.preset is not None:
        if ns.preset not in STUDY_PRESETS:
            raise ConfigError(f"unknown study preset {ns.preset!r}; choose one of: {', '.join(STUDY_PRESETS)}")
        values = {k: (dict(v) if isinstance(v, dict) else v) for k, v in STUDY_PRESETS[ns.preset].items()}
    for key in ("dataset", "data", "searches", "random_cells", "train_seed"):
        if getattr(ns, key) is not None:
            values[key] = getattr(ns, key)
    if ns.arm:
        values["arms"] = [Arm.parse(a) for a in ns.arm]
    for key, items in (("search", ns.search_set), ("train", ns.train_set)):
        for item in items:
            arm = Arm.parse(f"x:{item}")
            values.setdefault(key, {}).update(arm.overrides)
    values["arms"] = tuple(values.get("arms", (Arm("pcdarts"),)))
    cfg = StudyConfig(**values)
    summary = run_study(cfg, ns.out, progress=not ns.no_progress, threads=ns.threads)
    png = plot_study(summary, Path(ns.out) / "study.png")
    print(format_table(summary["arms"]))
    print(verdict(summary["arms"]))
    print(f"study.json and {png.name} in {ns.out}; `pcdarts report {ns.out}` draws the report")
    return 0


def cmd_report(ns: argparse.Namespace) -> int:
    from .report import build_report

    print(f"wrote {build_report(ns.run_dir, ns.out)}")
    return 0


def cmd_subsample(ns: argparse.Namespace) -> int:
    from .data.folder import split_folder, subsample
    from .runs import atomic_write_json

    root = Path(ns.data)
    if not root.exists():
        raise ConfigError(f"data path {root} does not exist")
    _, train, _ = split_folder(root)
    subset = subsample(train, ns.train_fraction, ns.val_fraction, ns.seed)
    atomic_write_json(Path(ns.out), subset)
    print(
        f"wrote {ns.out}: {len(subset['weights'])} images for the weights, {len(subset['arch'])} for alpha/beta "
        f"(of {len(train)})"
    )
    return 0


COMMANDS = {
    "export": cmd_export,
    "predict": cmd_predict,
    "subsample": cmd_subsample,
    "plot": cmd_plot,
    "report": cmd_report,
    "search": cmd_search,
    "train": cmd_train,
    "eval": cmd_eval,
    "info": cmd_info,
    "genotypes": cmd_genotypes,
    "plan": cmd_plan,
    "demo": cmd_demo,
    "study": cmd_study,
}


# What the machine, not the code, got wrong: full disk, permissions, missing or misplaced paths.
USER_OS_ERRORS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOENT,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if "bench" in args and all(a.startswith("-") for a in args[: args.index("bench")]):
        # argparse's REMAINDER drops a leading option (`pcdarts bench --help`): hand the rest over untouched
        from .bench import main as bench_main

        return bench_main(args[args.index("bench") + 1 :])
    parser = build_parser()
    ns = parser.parse_args(args)
    logging.basicConfig(level=logging.WARNING if ns.quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    from .engine import NonFiniteLoss
    from .errors import PCDartsError

    try:
        return COMMANDS[ns.command](ns)
    except NonFiniteLoss as exc:
        print(f"pcdarts: {exc}", file=sys.stderr)
        return 1
    except PCDartsError as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"pcdarts {ns.command}: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`pcdarts ... | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        if exc.errno not in USER_OS_ERRORS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"pcdarts {ns.command}: error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if not any(c.__name__ == "TorchDynamoException" for c in type(exc).__mro__):
            raise
        # only --compile gets here (no C++ compiler, an op it cannot compile): no need to import torch._dynamo
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(
            f"pcdarts {ns.command}: error: torch.compile failed ({msg}); run again without --compile", file=sys.stderr
        )
        return 2
    except KeyboardInterrupt:
        print("pcdarts: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
