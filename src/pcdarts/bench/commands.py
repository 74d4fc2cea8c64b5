"""The ``pcdarts bench`` command: runs each measurement in fresh processes and prints the numbers.

Peaks come from a fresh process per configuration (clean RSS, no allocator carry-over); timings that are
compared run alternated in one process, so the machine's noise falls on both alike.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

import torch

from ..choices import CHOICES
from ..errors import first_line
from ..runs.config import MAX_THREADS, SearchConfig
from .steps import (
    compile_bench,
    fanout_bench,
    layout_bench,
    machine,
    memory_one,
    project_search_minutes,
    search_times,
    step_peak,
    step_times,
)
from .tables import (
    print_by_module,
    print_compile,
    print_fanout,
    print_layout,
    print_memory,
    print_recompute,
    print_step,
)


def cmd_memory(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for k in args.ks:
        if args.channels % k:
            continue
        rows.append(_worker_json(["_memory_one", *_shared_flags(args), "--k", str(k)]))  # the last --k wins
    base = next((r for r in rows if r["k"] == 1), None)
    for r in rows:
        if base:
            r["saved_vs_k1"] = r["saved_activations_mib"] / base["saved_activations_mib"]
            r["peak_vs_k1"] = r["peak_step_mib"] / base["peak_step_mib"] if base["peak_step_mib"] > 0 else None
    return {
        "benchmark": "search-step memory",
        "config": vars(args) | {"ks": args.ks},
        "machine": machine(),
        "rows": rows,
    }


def cmd_by_module(args: argparse.Namespace) -> dict[str, Any]:
    """Where the saved activations of one forward go, by module, for pcdarts and for the reference habits."""
    from ..runs.memory import saved_bytes_by_module
    from .reference import to_reference
    from .steps import build

    tables = {}
    for mode in ("optimised", "baseline"):
        net, x, y = build(args, args.k, torch.device(args.device), args.recompute)
        if mode == "baseline":
            to_reference(net)
        tables[mode] = {k: v / 2**20 for k, v in saved_bytes_by_module(net, x, y).items()}
    return {"benchmark": "saved activations by module", "config": vars(args), "machine": machine(), "tables": tables}


def cmd_recompute(args: argparse.Namespace) -> dict[str, Any]:
    """Peak memory and step time of the reference and of each recompute mode, at one batch and K.

    Each mode runs in a process of its own, one after another: its peak first, from a clean RSS, then its
    step times (a step here is seconds long, so the order's drift is small next to the differences
    measured; the load is recorded).
    """
    from ..runs.memory import PLAN_BUDGET_BYTES, auto_batch_size

    rows = []
    for mode, recompute in (
        ("baseline", "none"),
        ("optimised", "none"),
        ("optimised", "edges"),
        ("optimised", "cells"),
    ):
        flags = [*_shared_flags(args), "--recompute", recompute, "--repeats", str(args.repeats)]
        row = _worker_json(["_step_one", "--mode", mode, "--with-times", *flags])
        row["mode"] = "reference habits" if mode == "baseline" else f"recompute {recompute}"
        if mode == "optimised":
            row["batch_fitting_budget"] = auto_batch_size(
                SearchConfig(init_channels=args.channels, layers=args.layers, k=args.k, recompute=recompute),
                in_channels=3,
                size=args.size,
                num_classes=10,
                device=torch.device(args.device),
                budget_bytes=PLAN_BUDGET_BYTES,
                safety=1.0,
            )[0]
        rows.append(row)
    ref = rows[0]["search_peak_mib"]
    for r in rows:
        r["peak_vs_reference"] = r["search_peak_mib"] / ref if ref > 0 else None
    return {"benchmark": "recompute", "config": vars(args), "machine": machine(), "rows": rows}


def _worker_json(argv: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pcdarts.bench", *argv]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])


def cmd_step(args: argparse.Namespace) -> dict[str, Any]:
    def run(*extra: str) -> dict[str, Any]:
        return _worker_json([*extra, *_shared_flags(args)])

    times = run("_step_times", *(["--baseline"] if args.baseline else []))
    rows = []
    for mode in times:  # peaks from a fresh process per mode: clean RSS, no allocator carry-over
        rows.append({"mode": mode, **times[mode], **run("_step_one", "--mode", mode)})
    for r in rows:
        r["projected_search_min"] = project_search_minutes(r, args)
    res = {"benchmark": "step time", "config": vars(args), "machine": machine(), "rows": rows}
    if len(rows) == 2:
        res["search_speedup"] = rows[1]["search"]["median_s"] / rows[0]["search"]["median_s"]
        res["train_speedup"] = rows[1]["train"]["median_s"] / rows[0]["train"]["median_s"]
        if rows[1]["search_peak_mib"] > 0:
            res["search_peak_ratio"] = rows[0]["search_peak_mib"] / rows[1]["search_peak_mib"]
    return res


def _shared_flags(args: argparse.Namespace) -> list[str]:
    return [
        "--channels",
        str(args.channels),
        "--layers",
        str(args.layers),
        "--batch",
        str(args.batch),
        "--size",
        str(args.size),
        "--k",
        str(args.k),
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--repeats",
        str(args.repeats),
        "--precision",
        args.precision,
        "--train-channels",
        str(args.train_channels),
        "--train-layers",
        str(args.train_layers),
        "--project-epochs",
        str(args.project_epochs),
        "--project-warmup",
        str(args.project_warmup),
        "--project-images",
        str(args.project_images),
        "--recompute",
        args.recompute,
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="pcdarts bench",
        description="Speed and memory measurements, each in fresh processes; numbers printed (or --json)",
        allow_abbrev=False,
    )
    p.add_argument(
        "what",
        choices=[
            "memory",
            "step",
            "recompute",
            "fanout",
            "data",
            "compile",
            "train",
            "limit",
            "profile",
            "_memory_one",
            "_step_one",
            "_step_times",
        ],
        # the _names are measuring subprocesses
        metavar="{memory,step,recompute,fanout,data,compile,train,limit,profile}",
        help="memory: saved activations and peak per K; step: search/train step time; data: loader speed; "
        "recompute: peak and step time per --recompute mode against the reference; fanout: each state's edges "
        "together vs edge by edge; compile: eager vs torch.compile; train: the final network's training step per "
        "memory layout (contiguous vs channels_last); limit: the device's peak GFLOP/s and how close the search and "
        "training steps come to it; profile: where the search step's time goes, by kind of work",
    )
    p.add_argument("--baseline", action="store_true", help="also run with every optimisation off, side by side")
    p.add_argument("--mode", default="optimised")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--precision", choices=CHOICES["precision"], default=SearchConfig.precision)
    p.add_argument("--train-channels", type=int, default=16)
    p.add_argument("--train-layers", type=int, default=8)
    p.add_argument("--train-batch", type=int, default=0, help="limit: the training step's batch (0: --batch)")
    p.add_argument("--train-size", type=int, default=0, help="limit: the training step's image side (0: --size)")
    p.add_argument("--in-channels", type=int, default=3, help="train: image channels (1 for grey images)")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--k", type=int, default=SearchConfig.k)
    p.add_argument(
        "--cell", choices=CHOICES["cell"], default=SearchConfig.cell, help="limit, profile, fanout: the cell space"
    )
    p.add_argument("--channels", type=int, default=SearchConfig.init_channels)
    p.add_argument("--layers", type=int, default=SearchConfig.layers)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, default=10000, help="data benchmark: images per epoch")
    p.add_argument(
        "--project-epochs", type=int, default=SearchConfig.epochs, help="search-time projection: epochs (paper: 50)"
    )
    p.add_argument(
        "--project-warmup",
        type=int,
        default=SearchConfig.warmup_epochs,
        help="search-time projection: warm-up epochs (paper: 15)",
    )
    p.add_argument(
        "--project-images",
        type=int,
        default=25000,
        help="search-time projection: images in each of the train and val halves (CIFAR-10: 25,000)",
    )
    p.add_argument(
        "--recompute",
        choices=CHOICES["recompute"],
        default=SearchConfig.recompute,
        help="activation checkpointing of the supernet (memory, step)",
    )
    p.add_argument("--regional", action="store_true", help="compile: the supernet's edge groups (FanOut), one by one")
    p.add_argument("--by-module", action="store_true", help="memory: where the saved activations go, by module")
    p.add_argument("--with-times", action="store_true", help=argparse.SUPPRESS)  # _step_one: time it too
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    problem = check_args(args)
    if problem:
        print(f"pcdarts bench: error: {problem}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    if args.what.startswith("_"):  # a worker of the parent benchmark: its errors go to the parent
        return _worker(args)
    try:
        return _run(args)
    except subprocess.CalledProcessError as exc:  # a measuring subprocess failed: pass on its last line
        lines = (exc.stderr or "").strip().splitlines()  # the subprocess's own error is its last line
        if exc.returncode < 0:
            why = f"a measuring process was killed by signal {-exc.returncode} (out of memory?): lower --batch"
        else:
            why = first_line(lines[-1] if lines else exc)
        print(f"pcdarts bench: error: {why}", file=sys.stderr)
    except (RuntimeError, ValueError) as exc:
        print(f"pcdarts bench: error: {first_line(exc)}", file=sys.stderr)
    return 2


def check_args(args: argparse.Namespace) -> str | None:
    """The one-line complaint about settings no benchmark can run with, or None."""
    for name in ("repeats", "batch", "size", "channels", "threads", "train_channels", "images"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}"
    if args.baseline and args.cell != "darts":
        return "--baseline is the reference's DARTS cell: use it with --cell darts"
    if args.train_batch < 0 or args.train_size < 0:
        return "--train-batch and --train-size must be >= 0 (0: --batch, --size)"
    if args.threads > MAX_THREADS:
        return f"--threads must be at most {MAX_THREADS}, got {args.threads}"
    if args.layers < 3 or args.train_layers < 3:
        return "--layers and --train-layers must be >= 3 (two reduction cells and a normal one)"
    ks = args.ks if args.what == "memory" else [args.k]
    if any(k < 1 for k in ks) or all(args.channels % k for k in ks) or args.channels % 2:
        return f"--channels {args.channels} must be even and divisible by K ({', '.join(map(str, ks))})"
    if not 0 <= args.project_warmup <= args.project_epochs or args.project_images < 1:
        return "the projection needs 0 <= --project-warmup <= --project-epochs and --project-images >= 1"
    try:
        device = torch.device(args.device)
    except RuntimeError:
        return f"unknown device {args.device!r}: use cpu, cuda or cuda:N"
    if device.type == "cuda" and not torch.cuda.is_available():
        return "CUDA is not available on this machine: use --device cpu"
    if args.precision == "fp16" and device.type != "cuda":
        return "fp16 autocast needs --device cuda; on CPU use fp32 or bf16"
    return None


def _worker(args: argparse.Namespace) -> int:
    if args.what == "_memory_one":
        print(json.dumps(memory_one(args, args.k)))
        return 0
    if args.what == "_step_one":
        res = step_peak(args, args.mode == "baseline")
        if args.with_times:  # recompute: then this mode's search step times, in the same process
            res["search"] = search_times(args, args.mode == "baseline")
        print(json.dumps(res))
        return 0
    print(json.dumps(step_times(args)))
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.what == "data":
        from .data import data_bench, print_data

        res = data_bench(args)
        printer = print_data
    elif args.what == "step":
        res, printer = cmd_step(args), print_step
    elif args.what == "recompute":
        res, printer = cmd_recompute(args), print_recompute
    elif args.what == "compile":
        res, printer = compile_bench(args), print_compile
    elif args.what == "train":
        res, printer = layout_bench(args), print_layout
    elif args.what == "fanout":
        res, printer = fanout_bench(args), print_fanout
    elif args.what == "limit":
        from .limit import limit_bench, print_limit

        res, printer = limit_bench(args), print_limit
    elif args.what == "profile":
        from .profile import print_profile, profile_bench

        res, printer = profile_bench(args), print_profile
    else:
        res, printer = (cmd_by_module(args), print_by_module) if args.by_module else (cmd_memory(args), print_memory)
    if args.json:
        print(json.dumps(res))
    else:
        printer(res)
    return 0
