"""Commands that run something: search, train, eval, demo, study, report."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict

from ..errors import ConfigError, first_line
from ..runs.config import SearchConfig, TrainConfig
from .parser import _overrides

log = logging.getLogger("pcdarts")


def _need_out(ns: argparse.Namespace) -> None:
    if not ns.out:
        raise ConfigError(f"pcdarts {ns.command} needs --out RUN_FOLDER (where checkpoints and results go)")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def cmd_search(ns: argparse.Namespace) -> int:
    from ..runs.search import run_search
    from ..runs.settings import search_settings

    cfg = search_settings(_overrides(ns, SearchConfig), dataset=ns.dataset, preset=ns.preset, out=ns.out,
                          resume=ns.resume, need_data=not ns.print_config)  # fmt: skip
    if ns.print_config:
        from ..errors import PCDartsError
        from ..runs.inputs import data_line, load_data
        from ..runs.search import learnability_warnings, schedule_line, search_counts

        print(json.dumps(asdict(cfg), indent=2))
        try:
            ds = load_data(cfg)
            counts = search_counts(cfg, ds)
        except PCDartsError as exc:  # the data is not here (yet): the config is still printed
            print(f"schedule: unknown until the data is there ({first_line(exc, 200)})", file=sys.stderr)
            return 0
        print(data_line(cfg, ds), file=sys.stderr)
        print(f"schedule: {schedule_line(counts)}", file=sys.stderr)
        for warning in learnability_warnings(cfg, counts):
            print(f"warning: {warning}", file=sys.stderr)
        return 0
    _need_out(ns)
    result = run_search(
        cfg, ns.out, resume=ns.resume, overwrite=ns.overwrite, progress=not ns.no_progress, extend=ns.extend
    )
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
    from ..nas.genotype import Genotype, param_free_count
    from ..runs.search import collapse_note

    g = Genotype.from_dict(result["genotype"])
    stop = f" (DARTS+ stop: {result['early_stop']['reason']})" if result.get("early_stop") else ""
    if getattr(g, "cell", "darts") == "darts":
        counted = f"{param_free_count(g.normal)} of 8 normal-cell ops are parameter-free"
    else:
        counted = f"{g.counts()['param_free']} of 6 edges parameter-free, {g.counts()['none']} cut (none)"
    print(
        f"search finished in {_minutes(result['seconds'])}{stop}; {counted}\n{g.describe()}\n"
        f"schedule: {result.get('warmup_steps', '?')} warm-up steps, {result.get('arch_steps', '?')} arch steps, "
        f"{result.get('op_channels', '?')} channels per candidate op\n"
        f"files: {ns.out}/ (genotype.json, search_result.json, arch.json, metrics.jsonl, checkpoint.pt)\n"
        + collapse_note(g, ns.out)
        + f"next: pcdarts train --genotype {ns.out} --out {ns.out}-train"
    )
    return 0


def cmd_train(ns: argparse.Namespace) -> int:
    from ..runs.artifacts import load_genotype
    from ..runs.settings import train_settings
    from ..runs.train import run_train

    cfg = train_settings(_overrides(ns, TrainConfig), dataset=ns.dataset, preset=ns.preset, out=ns.out,
                         resume=ns.resume)  # fmt: skip
    if ns.print_config:
        from ..errors import PCDartsError
        from ..runs.inputs import data_line, load_data

        if cfg.max_macs:  # print the channels it will train with
            from ..runs.sizing import fit_to_macs

            try:
                cfg = fit_to_macs(cfg, load_genotype(cfg.genotype))
            except PCDartsError:
                pass
        print(json.dumps(asdict(cfg), indent=2))
        try:
            print(data_line(cfg, load_data(cfg)), file=sys.stderr)
        except PCDartsError:  # the data is not here (yet): the config is still printed
            pass
        return 0
    _need_out(ns)
    if getattr(ns, "genotype", None) is None and not ns.resume:  # said first: a default cell is easy to miss
        log.warning(
            "training %s, the default --genotype (the paper's CIFAR-10 cell): pass --genotype NAME, a "
            "genotype.json or a search run folder to train another",
            cfg.genotype,
        )
    genotype = load_genotype(cfg.genotype)
    log.info(
        "training genotype %s:\n%s", cfg.genotype if len(cfg.genotype) < 80 else "(given as text)", genotype.describe()
    )
    result = run_train(
        cfg,
        ns.out,
        resume=ns.resume,
        overwrite=ns.overwrite,
        progress=not ns.no_progress,
        extend=ns.extend,
        genotype=genotype,
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
    split = {"val": "validation", "holdout": f"hold-out ({result['val_images']:,} images)"}
    picked = (
        f"epoch {result['selected_epoch']} (best {split[result['selected_by']]} accuracy {result['val_accuracy']:.4f})"
        if result["selected_by"] in split
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
    from ..runs.evaluate import evaluate_trained

    out = evaluate_trained(ns.checkpoint, dataset=ns.dataset, data=ns.data, batch_size=ns.batch_size, device=ns.device)
    stats = {"top1": out["test_accuracy"], "top5": out["test_top5"], "loss": out["test_loss"], "n": out["images"]}
    name = out["dataset"]
    if ns.json:
        print(json.dumps({k: v for k, v in out.items() if k != "classes"}))
    else:
        top5 = f"  top-5 {stats['top5']:.4f}" if out["classes"] > 5 else ""  # of 5 classes or fewer always 1
        print(f"{name}: top-1 {stats['top1']:.4f}{top5}  loss {stats['loss']:.4f}  ({stats['n']} images)")
    return 0


def cmd_demo(ns: argparse.Namespace) -> int:
    from ..runs.demo import run_demo

    summary = run_demo(
        ns.out,
        overwrite=ns.overwrite,
        resume=ns.resume,
        progress=not ns.no_progress,
        random_control=not ns.no_random,
        search_epochs=ns.search_epochs,
        train_epochs=ns.train_epochs,
        seed=ns.seed,
        threads=ns.threads,
    )
    if summary["stopped"]:
        again = f"pcdarts demo --resume --out {ns.out}"
        for flag, value in (("--search-epochs", ns.search_epochs), ("--train-epochs", ns.train_epochs),
                            ("--threads", ns.threads or None)):  # fmt: skip
            if value is not None:
                again += f" {flag} {value}"
        again += (f" --seed {ns.seed}" if ns.seed else "") + (" --no-random" if ns.no_random else "")
        print(f"stopped during the {summary['part']} part; continue with: {again}", file=sys.stderr)
        return 0
    print(summary["text"])
    return 0
