"""Benchmarks that print numbers: search/train step time and memory, K scaling.

``python -m pcdarts.bench memory``  peak memory of one search step for K = 1, 2, 4, 8
``python -m pcdarts.bench step``    search/train step timings, optimised vs ``--baseline``
``python -m pcdarts.bench data``    on-device batched augmentation vs a per-sample pipeline
``python -m pcdarts.bench compile`` final-network training step, eager vs ``torch.compile``

Memory is reported two ways: bytes of activations autograd saves for the
backward pass (exact, the quantity partial channels shrink), and the process's
peak memory (CUDA max allocated on GPU; peak RSS growth on CPU, each K in a
fresh subprocess so allocators do not carry over).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F

from .architect import Architect
from .memory import saved_activation_bytes
from .supernet import SearchNetwork


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _machine() -> dict[str, Any]:
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_1min": load,
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def build(args: argparse.Namespace, k: int, device: torch.device) -> tuple[SearchNetwork, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = SearchNetwork(num_classes=10, in_channels=3, init_channels=args.channels, layers=args.layers, k=k).to(device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    return net, x, y


def search_step(
    net: SearchNetwork, arch: Architect, w_opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> None:
    arch.step(x, y)
    w_opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(x), y)
    loss.backward(inputs=net.weight_parameters())
    torch.nn.utils.clip_grad_norm_(net.weight_parameters(), 5.0)
    w_opt.step()


def memory_one(args: argparse.Namespace, k: int) -> dict[str, Any]:
    device = torch.device(args.device)
    net, x, y = build(args, k, device)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9)
    arch = Architect(net, lr=6e-4)
    saved = saved_activation_bytes(net, x, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        search_step(net, arch, w_opt, x, y)
        torch.cuda.synchronize()
        peak = (torch.cuda.max_allocated() - base) / 2**20
    else:
        before = _rss_mib()
        t = time.perf_counter()
        search_step(net, arch, w_opt, x, y)
        peak = _rss_mib() - before
        _ = time.perf_counter() - t
    return {"k": k, "saved_activations_mib": saved / 2**20, "peak_step_mib": peak}


def cmd_memory(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for k in args.ks:
        if args.channels % k:
            continue
        cmd = [
            sys.executable,
            "-m",
            "pcdarts.bench",
            "_memory_one",
            "--k",
            str(k),
            "--channels",
            str(args.channels),
            "--layers",
            str(args.layers),
            "--batch",
            str(args.batch),
            "--size",
            str(args.size),
            "--device",
            args.device,
            "--threads",
            str(args.threads),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    base = next((r for r in rows if r["k"] == 1), None)
    for r in rows:
        if base:
            r["saved_vs_k1"] = r["saved_activations_mib"] / base["saved_activations_mib"]
            r["peak_vs_k1"] = r["peak_step_mib"] / base["peak_step_mib"] if base["peak_step_mib"] > 0 else None
    return {
        "benchmark": "search-step memory",
        "config": vars(args) | {"ks": args.ks},
        "machine": _machine(),
        "rows": rows,
    }


def print_memory(res: dict[str, Any]) -> None:
    c = res["config"]
    print(
        f"search step memory: C={c['channels']}, {c['layers']} cells, batch {c['batch']}, {c['size']}x{c['size']}, "
        f"device {c['device']}, torch {res['machine']['torch']}, threads {c['threads']}"
    )
    print(f"{'K':>3} {'saved activations MiB':>22} {'vs K=1':>7} {'peak step MiB':>14} {'vs K=1':>7}")
    for r in res["rows"]:
        sv = f"{r.get('saved_vs_k1', float('nan')):.3f}"
        pv = f"{r['peak_vs_k1']:.3f}" if r.get("peak_vs_k1") is not None else "n/a"
        print(f"{r['k']:>3} {r['saved_activations_mib']:>22.1f} {sv:>7} {r['peak_step_mib']:>14.1f} {pv:>7}")


def _timeit(fn: Any, repeats: int, warmup: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return times


def summarise_times(times: list[float], batch: int) -> dict[str, float]:
    med = statistics.median(times)
    return {"median_s": med, "min_s": min(times), "max_s": max(times), "images_per_s": batch / med}


def _search_stepper(args: argparse.Namespace, baseline: bool, device: torch.device) -> tuple[Any, Any, Any]:
    """The arch step, the weight step and an evaluation forward of a fresh supernet, optimisations on or off.

    A search step is the arch step then the weight step; the warm-up epochs run the weight step alone and
    every epoch ends with an evaluation pass, which is what the search-time projection adds up.
    """
    from .ops import set_fast_kernels
    from .supernet import MixedOp

    net, x, y = build(args, args.k, device)
    set_fast_kernels(net, not baseline)
    for m in net.modules():
        if isinstance(m, MixedOp):
            m.skip_none = not baseline
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4, foreach=not baseline)
    arch = Architect(net, lr=6e-4, grads_only=not baseline)
    weights = net.weight_parameters()
    amp = _autocast(args.precision, device) if not baseline else None

    def arch_step() -> None:
        with amp or _null():
            arch.step(x, y)

    def weight_step() -> None:
        w_opt.zero_grad(set_to_none=True)
        with amp or _null():
            loss = F.cross_entropy(net(x), y)
        if baseline:
            loss.backward()
        else:
            loss.backward(inputs=weights)
        torch.nn.utils.clip_grad_norm_(weights, 5.0)
        w_opt.step()

    def eval_step() -> None:
        net.eval()
        with torch.no_grad(), amp or _null():
            net(x)
        net.train()

    return arch_step, weight_step, eval_step


def _train_stepper(args: argparse.Namespace, baseline: bool, device: torch.device, compiled: bool = False) -> Any:
    """One training step of the PC_DARTS_cifar network (auxiliary head on)."""
    from .genotype import GENOTYPES
    from .network import build_network
    from .ops import set_fast_kernels

    torch.manual_seed(0)
    model = build_network(
        GENOTYPES["PC_DARTS_cifar"],
        num_classes=10,
        init_channels=args.train_channels,
        layers=args.train_layers,
        auxiliary=True,
    ).to(device)
    set_fast_kernels(model, not baseline)
    opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4, foreach=not baseline)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    amp = _autocast(args.precision, device) if not baseline else None
    forward = torch.compile(model) if compiled else model

    def tstep() -> None:
        opt.zero_grad(set_to_none=True)
        with amp or _null():
            logits, aux = forward(x)
            loss = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    return tstep


def step_peak(args: argparse.Namespace, baseline: bool) -> dict[str, Any]:
    """Peak memory of one search step, in a process of its own."""
    device = torch.device(args.device)
    arch_step, weight_step, _ = _search_stepper(args, baseline, device)
    before = _rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    arch_step()
    weight_step()
    peak = (torch.cuda.max_memory_allocated() / 2**20) if device.type == "cuda" else _rss_mib() - before
    return {"mode": "baseline" if baseline else "optimised", "search_peak_mib": peak}


def step_times(args: argparse.Namespace) -> dict[str, Any]:
    """Both modes in one process, steps alternated (A B A B ...) so machine noise hits both alike."""
    device = torch.device(args.device)
    modes = [False, True] if args.baseline else [False]
    out: dict[str, Any] = {b: {} for b in modes}
    searchers = {b: _search_stepper(args, b, device) for b in modes}
    parts: dict[bool, dict[str, list[float]]] = {b: {"arch": [], "weight": [], "eval": []} for b in modes}
    for b in modes:  # warm-up
        for fn in searchers[b]:
            fn()
    for _ in range(args.repeats):
        for b in modes:
            for name, fn in zip(("arch", "weight", "eval"), searchers[b]):
                parts[b][name] += _timeit(fn, 1, 0, device)
    for b in modes:
        p = parts[b]
        out[b]["search"] = summarise_times([a + w for a, w in zip(p["arch"], p["weight"])], args.batch)
        out[b]["weight_step"] = summarise_times(p["weight"], args.batch)
        out[b]["eval_step"] = summarise_times(p["eval"], args.batch)
    del searchers
    trainers = {b: _train_stepper(args, b, device) for b in modes}
    for b in modes:
        trainers[b]()
    times: dict[bool, list[float]] = {b: [] for b in modes}
    for _ in range(args.repeats):
        for b in modes:
            times[b] += _timeit(trainers[b], 1, 0, device)
    for b in modes:
        out[b]["train"] = summarise_times(times[b], args.batch)
    return {("baseline" if b else "optimised"): v for b, v in out.items()}


def project_search_minutes(row: dict[str, Any], args: argparse.Namespace) -> float:
    """Minutes for a whole search at the measured step times (data loading and checkpoints not counted).

    The default protocol is the paper's CIFAR-10 search: 25,000 training and 25,000 validation images,
    50 epochs of which the first 15 are warm-up (weight steps only), an evaluation pass every epoch.
    """
    steps = math.ceil(args.project_images / args.batch)
    search, weight, evals = row["search"]["median_s"], row["weight_step"]["median_s"], row["eval_step"]["median_s"]
    warm, epochs = args.project_warmup, args.project_epochs
    return steps * (warm * weight + (epochs - warm) * search + epochs * evals) / 60.0


def compile_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Training step of the final network, eager vs ``torch.compile``, alternated in one process."""
    device = torch.device(args.device)
    eager = _train_stepper(args, False, device, compiled=False)
    compiled = _train_stepper(args, False, device, compiled=True)
    t = time.perf_counter()
    compiled()
    first = time.perf_counter() - t
    eager()
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(args.repeats):
        times["eager"] += _timeit(eager, 1, 0, device)
        times["compiled"] += _timeit(compiled, 1, 0, device)
    rows = {k: summarise_times(v, args.batch) for k, v in times.items()}
    return {
        "benchmark": "torch.compile train step",
        "config": vars(args),
        "machine": _machine(),
        "first_compiled_step_s": first,
        "rows": rows,
        "compiled_speedup": rows["eager"]["median_s"] / rows["compiled"]["median_s"],
    }


def print_compile(res: dict[str, Any]) -> None:
    c, m = res["config"], res["machine"]
    print(
        f"torch.compile: PC_DARTS_cifar C={c['train_channels']}, {c['train_layers']} cells, batch {c['batch']}, "
        f"{c['size']}x{c['size']}, {c['device']}, torch {m['torch']}, {c['threads']} threads, load {m['load_1min']}"
    )
    print(f"first compiled step (compiling): {res['first_compiled_step_s']:.1f} s")
    for name, r in res["rows"].items():
        print(f"{name:>9} {r['median_s']:.3f} s/step ({r['min_s']:.3f}-{r['max_s']:.3f}) {r['images_per_s']:.1f} img/s")
    print(f"compiled speed-up over eager: {res['compiled_speedup']:.2f}x")


def _null() -> Any:
    import contextlib

    return contextlib.nullcontext()


def _autocast(precision: str, device: torch.device) -> Any:
    if precision == "fp32":
        return None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def cmd_step(args: argparse.Namespace) -> dict[str, Any]:
    def run(*extra: str) -> dict[str, Any]:
        cmd = [sys.executable, "-m", "pcdarts.bench", *extra, *_shared_flags(args)]
        return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])

    times = run("_step_times", *(["--baseline"] if args.baseline else []))
    rows = []
    for mode in times:  # peaks from a fresh process per mode: clean RSS, no allocator carry-over
        rows.append({"mode": mode, **times[mode], **run("_step_one", "--mode", mode)})
    for r in rows:
        r["projected_search_min"] = project_search_minutes(r, args)
    res = {"benchmark": "step time", "config": vars(args), "machine": _machine(), "rows": rows}
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
    ]


def print_step(res: dict[str, Any]) -> None:
    c, m = res["config"], res["machine"]
    print(
        f"step benchmark: C={c['channels']}, {c['layers']} cells, K={c['k']}, batch {c['batch']}, "
        f"{c['size']}x{c['size']}, "
        f"{c['device']} {c['precision']}, torch {m['torch']}, {c['threads']} threads, load {m['load_1min']}"
    )
    print(
        f"{'mode':>10} {'search s/step (min-max)':>26} {'img/s':>7} {'peak MiB':>9} "
        f"{'train s/step (min-max)':>26} {'img/s':>7}"
    )
    for r in res["rows"]:
        s, t = r["search"], r["train"]
        print(
            f"{r['mode']:>10} {s['median_s']:>9.3f} ({s['min_s']:.3f}-{s['max_s']:.3f}) {s['images_per_s']:>7.1f} "
            f"{r['search_peak_mib']:>9.1f} {t['median_s']:>9.3f} ({t['min_s']:.3f}-{t['max_s']:.3f}) "
            f"{t['images_per_s']:>7.1f}"
        )
    if "search_speedup" in res:
        print(
            f"speed-up over baseline: search {res['search_speedup']:.2f}x, train {res['train_speedup']:.2f}x; "
            f"search peak memory ratio {res.get('search_peak_ratio', float('nan')):.2f}"
        )
    print(
        f"projected search ({c['project_epochs']} epochs, {c['project_warmup']} warm-up, "
        f"{c['project_images']:,} train + "
        f"{c['project_images']:,} val images, batch {c['batch']}; weight step "
        + ", ".join(f"{r['mode']} {r['weight_step']['median_s']:.3f} s" for r in res["rows"])
        + "): "
        + ", ".join(f"{r['mode']} {r['projected_search_min']:.1f} min" for r in res["rows"])
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pcdarts bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "what",
        choices=["memory", "step", "data", "compile", "_memory_one", "_step_one", "_step_times"],
        metavar="{memory,step,data,compile}",  # the _names are the measuring subprocesses, not for people
        help="memory: saved activations and peak per K; step: search/train step time; data: loader speed; "
        "compile: eager vs torch.compile",
    )
    p.add_argument("--baseline", action="store_true", help="also run with every optimisation off, side by side")
    p.add_argument("--mode", default="optimised")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--train-channels", type=int, default=16)
    p.add_argument("--train-layers", type=int, default=8)
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, default=10000, help="data benchmark: images per epoch")
    p.add_argument("--project-epochs", type=int, default=50, help="search-time projection: epochs (paper: 50)")
    p.add_argument("--project-warmup", type=int, default=15, help="search-time projection: warm-up epochs (paper: 15)")
    p.add_argument(
        "--project-images",
        type=int,
        default=25000,
        help="search-time projection: images in each of the train and val halves (CIFAR-10: 25,000)",
    )
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
        lines = (exc.stderr or "").strip().splitlines()
        if exc.returncode < 0:
            why = f"a measuring process was killed by signal {-exc.returncode} (out of memory?): lower --batch"
        else:
            why = lines[-1] if lines else str(exc)
        print(f"pcdarts bench: error: {why}", file=sys.stderr)
    except (RuntimeError, ValueError) as exc:
        lines = str(exc).strip().splitlines()
        print(f"pcdarts bench: error: {lines[0] if lines else type(exc).__name__}", file=sys.stderr)
    return 2


def check_args(args: argparse.Namespace) -> str | None:
    """The one-line complaint about settings no benchmark can run with, or None."""
    for name in ("repeats", "batch", "size", "channels", "threads", "train_channels", "images"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}"
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
        print(json.dumps(step_peak(args, args.mode == "baseline")))
        return 0
    print(json.dumps(step_times(args)))
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.what == "data":
        from .bench_data import data_bench, print_data

        res = data_bench(args)
        printer = print_data
    elif args.what == "step":
        res, printer = cmd_step(args), print_step
    elif args.what == "compile":
        res, printer = compile_bench(args), print_compile
    else:
        res, printer = cmd_memory(args), print_memory
    if args.json:
        print(json.dumps(res))
    else:
        printer(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
