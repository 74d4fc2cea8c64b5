"""Commands around runs and genotypes: info, plan, genotypes, export, predict, plot, subsample."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError, first_line


def cmd_info(ns: argparse.Namespace) -> int:
    from ..runs.artifacts import describe_network, load_genotype

    out = describe_network(ns.genotype, dataset=ns.dataset, init_channels=ns.init_channels, layers=ns.layers,
                           num_classes=ns.num_classes)  # fmt: skip
    if out["trained_run"] and ns.dataset not in (None, out["dataset"]):
        print(f"info: {ns.genotype} is a training run on {out['dataset']}: its own network is shown", file=sys.stderr)
    if ns.json:
        print(json.dumps({k: v for k, v in out.items() if k != "trained_run"}))
    else:
        side = out["input"][1]
        print(
            f"{load_genotype(ns.genotype).to_text()}\n{out['dataset']} (C={out['init_channels']}, {out['layers']} "
            f"cells, {side}x{side}): {out['params']:,} parameters (auxiliary head excluded), "
            f"{out['macs'] / 1e6:.1f} M multiply-adds"
        )
    return 0


def cmd_plan(ns: argparse.Namespace) -> int:
    from ..runs.config import SearchConfig
    from ..runs.memory import memory_plan

    if ns.dataset is not None or ns.preset is not None:
        return _plan_search(ns)
    search_only = [f for f in ("image_size", "k", "warmup_epochs", "train_images", "holdout_images", "cell", "epochs")
                   if getattr(ns, f) is not None]  # fmt: skip
    if search_only:
        raise ConfigError(f"--{search_only[0].replace('_', '-')} plans a search: give --dataset (or --preset) too")
    cfg = SearchConfig(**{name: getattr(ns, name) for name in ("batch_size", "init_channels", "layers", "stem",
                                                                "space", "recompute") if getattr(ns, name) is not None},
                       ops=ns.ops)  # fmt: skip
    shape = {k: getattr(ns, k) for k in ("in_channels", "size", "num_classes") if getattr(ns, k) is not None}
    rows = memory_plan(cfg, ns.ks, **shape)
    if ns.json:
        print(json.dumps(rows))
        return 0
    cin, side, _ = rows[0]["input"]
    print(
        f"predicted search-step memory: C={cfg.init_channels}, {cfg.layers} cells, batch {cfg.batch_size}, "
        f"{cin}x{side}x{side}, recompute {cfg.recompute}"
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


def _plan_search(ns: argparse.Namespace) -> int:
    """``plan --dataset D`` / ``--preset P``: the search a ``pcdarts search`` with these flags would run, its
    memory per K and, from a few steps measured here, its whole time."""
    from ..runs.config import SearchConfig, resolve_config
    from ..runs.costs import search_minutes, search_shape, time_steps
    from ..runs.environment import pick_device
    from ..runs.memory import memory_plan
    from ..runs.presets import preset_values

    dataset = ns.dataset or "cifar10"
    shape_flags = [f for f in ("size", "in_channels", "num_classes") if getattr(ns, f) is not None]
    if shape_flags:  # the dataset has its shape: a second one would be ignored
        raise ConfigError(
            f"--{shape_flags[0].replace('_', '-')} and --dataset both give a shape: with --dataset use --image-size"
        )
    asked = {"batch_size": ns.batch_size, "init_channels": ns.init_channels, "layers": ns.layers, "stem": ns.stem,
             "space": ns.space, "ops": ns.ops or None, "recompute": ns.recompute, "cell": ns.cell,
             "epochs": ns.epochs, "image_size": ns.image_size, "k": ns.k, "warmup_epochs": ns.warmup_epochs,
             "train_images": ns.train_images, "holdout_images": ns.holdout_images}  # fmt: skip
    cfg = resolve_config(SearchConfig, dataset, asked, preset_values(ns.preset, "search", dataset))
    cin, side, classes, n = search_shape(cfg)
    rows = memory_plan(cfg, ns.ks, in_channels=cin, size=side, num_classes=classes)
    device = pick_device(ns.device)
    cost = None if ns.no_time else search_minutes(cfg, time_steps(cfg, device))
    if ns.json:
        print(json.dumps({"config": {"dataset": dataset, "preset": ns.preset, "k": cfg.k, "batch": cfg.batch_size,
                                     "images": n, "shape": [cin, side, side]},
                          "memory": rows, "time": cost, "device": str(device),
                          "threads": torch_threads()}))  # fmt: skip
        return 0
    print(
        f"search plan: {dataset}{' (preset ' + ns.preset + ')' if ns.preset else ''}, {n:,} train images at "
        f"{cin}x{side}x{side}, C={cfg.init_channels}, {cfg.layers} cells ({cfg.cell}), K={cfg.k}, batch "
        f"{cfg.batch_size}, {cfg.epochs} epochs ({cfg.warmup_epochs} warm-up)"
    )
    for r in rows:
        mark = "  <- this search" if r["k"] == cfg.k else ""
        print(f"K={r['k']}: {r['predicted_peak_bytes'] / 2**20:9.1f} MiB predicted peak per step{mark}")
    if cost is not None:
        print(
            f"time on {device} ({torch_threads()} threads): about {_hours(cost['minutes'])} for the whole search "
            f"({cost['steps_per_epoch']} steps an epoch; measured {cost['warmup_step_s']:.2f} s a warm-up step, "
            f"{cost['search_step_s']:.2f} s a search step; data loading not counted)"
        )
    return 0


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _hours(minutes: float) -> str:
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def cmd_genotypes(ns: argparse.Namespace) -> int:
    from ..nas.genotype import GENOTYPES

    if ns.json:
        print(json.dumps({k: g.to_dict() for k, g in GENOTYPES.items()}, indent=2))
    else:
        for name, g in GENOTYPES.items():
            print(f"{name}: {g.to_text()}")
    return 0


def cmd_export(ns: argparse.Namespace) -> int:
    from ..deploy import export_model

    report = export_model(ns.checkpoint, ns.format, ns.out, check=not ns.no_check, overwrite=ns.overwrite)
    if ns.json:
        print(json.dumps(report))
        return 0
    diff = report.get("max_abs_diff")
    check = f"; largest logit difference from PyTorch {diff:.2g}" if diff is not None else ""
    print(f"wrote {report['out']} ({report['format']}) and {report['out']}.json{check}")
    run = ns.checkpoint if Path(ns.checkpoint).is_dir() else str(Path(ns.checkpoint).parent)
    loader = {"onnx": "onnxruntime.InferenceSession", "torchscript": "torch.jit.load", "exported": "torch.export.load"}
    print(
        f"next: load it with {loader[report['format']]} (input size and preprocessing in {report['out']}.json), or "
        f"pcdarts predict --checkpoint {run} IMAGE..."
    )
    return 0


def cmd_derive(ns: argparse.Namespace) -> int:
    """The P-DARTS cap from the command line: the same cell ``pcdarts.derive_from_run`` gives in Python."""
    from ..files import atomic_write_json, check_target
    from ..runs.artifacts import derive_from_run

    genotype = derive_from_run(ns.run, max_param_free=ns.max_param_free, max_param_free_reduce=ns.max_param_free_reduce)
    if ns.out:
        check_target(ns.out, overwrite=ns.overwrite)
        atomic_write_json(Path(ns.out), genotype.to_dict())
    if ns.json:
        print(json.dumps(genotype.to_dict()))
        return 0
    print(genotype.describe())
    if ns.out:
        print(f"wrote {ns.out}\nnext: pcdarts train --genotype {ns.out} --out RUN")
    return 0


def cmd_predict(ns: argparse.Namespace) -> int:
    from ..deploy import predict

    failed: list[str] = []

    def report(path: str, exc: Exception) -> None:  # one unreadable file fails alone; the rest go on
        failed.append(path)
        print(f"pcdarts predict: error: {first_line(exc)}", file=sys.stderr)

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
    from ..files import check_target
    from ..runs.artifacts import load_genotype
    from ..viz.plot import plot_genotype
    from ..viz.search import plot_search_run

    if ns.run is None and ns.genotype is None:
        raise ConfigError("give --genotype G (cells) or --run SEARCH_DIR (cells, heatmaps, timeline, curves)")
    if ns.run is None:
        check_target(ns.out, overwrite=ns.overwrite)
        used = plot_genotype(load_genotype(ns.genotype), ns.out, renderer=ns.renderer)
        print(f"wrote {ns.out} ({used} renderer)")
        return 0
    genotype = load_genotype(ns.genotype) if ns.genotype else None
    drawn = plot_search_run(
        ns.run, ns.out, genotype=genotype, epochs=ns.epochs, renderer=ns.renderer, overwrite=ns.overwrite
    )
    names = [f"{p.name} ({drawn.renderer})" if k == "cells" else p.name for k, p in drawn.files.items()]
    stable = drawn.stable_epoch
    print(
        f"wrote {', '.join(names)} to {ns.out}; "
        + (f"genotype stable from epoch {stable}" if stable is not None else "the genotype changed at the last epoch")
    )
    return 0


def cmd_subsample(ns: argparse.Namespace) -> int:
    from ..data.folder import split_folder, subsample
    from ..files import atomic_write_json

    root = Path(ns.data)
    if not root.exists():
        raise ConfigError(f"data path {root} does not exist")
    from ..files import check_target

    check_target(ns.out, overwrite=ns.overwrite)
    _, train, _ = split_folder(root)
    subset = subsample(train, ns.train_fraction, ns.val_fraction, ns.seed)
    atomic_write_json(Path(ns.out), subset)
    print(
        f"wrote {ns.out}: {len(subset['weights'])} images for the weights, {len(subset['arch'])} for alpha/beta "
        f"(of {len(train)})"
    )
    return 0
