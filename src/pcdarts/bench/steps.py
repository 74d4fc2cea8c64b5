"""What the benchmarks measure: one search step, one training step, memory; each in the engine's real code.

The optimised mode runs ``engine.search_step`` and ``engine.train_step`` exactly as a search or a training
does; the baseline runs the same parameters with the reference implementation's habits
(``reference.py``). Both are built from one seed, so they compute the same function.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from ..nas.architect import Architect
from ..nas.supernet import SearchNetwork
from ..runs.config import SearchConfig, build_search_network
from ..runs.engine import autocast, search_step, train_step
from ..runs.memory import saved_activation_bytes
from .reference import reference_arch_step, to_edge_by_edge, to_reference


def rss_mib() -> float:
    """The process's peak resident memory so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> dict[str, Any]:
    """What a figure was measured on: torch, threads, cores, load, date, GPU."""
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


def build(
    args: argparse.Namespace, k: int, device: torch.device, recompute: str = "none"
) -> tuple[SearchNetwork, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    cell = getattr(args, "cell", "darts")
    cfg = SearchConfig(init_channels=args.channels, layers=args.layers, k=k, recompute=recompute, cell=cell)
    net = build_search_network(cfg, num_classes=10, in_channels=3).to(device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    return net, x, y


def search_stepper(
    args: argparse.Namespace, baseline: bool, device: torch.device, recompute: str = "none", edge_by_edge: bool = False
) -> tuple[Any, Any, Any]:
    """The arch step, the weight step and an evaluation forward of a fresh supernet.

    A search step is the arch step then the weight step; the warm-up epochs run the weight step alone and
    every epoch ends with an evaluation pass, which is what the search-time projection adds up.
    ``edge_by_edge``: pcdarts's supernet with each cell computed edge by edge (no ``fanout``).
    """
    net, x, y = build(args, args.k, device, recompute)
    if edge_by_edge:
        to_edge_by_edge(net)
    if baseline:  # the reference: full backward in both steps, per-tensor optimiser loops, plain kernels
        to_reference(net)
        w_opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4, foreach=False)
        a_opt = torch.optim.Adam(net.arch_parameters(), lr=6e-4, betas=(0.5, 0.999), weight_decay=1e-3, foreach=False)

        def arch_step() -> None:
            reference_arch_step(net, a_opt, x, y)

        def weight_step() -> None:
            w_opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            torch.nn.utils.clip_grad_norm_(net.weight_parameters(), 5.0)
            w_opt.step()

    else:  # exactly what a search runs (search.py builds the same optimisers)
        weights = net.weight_parameters()
        w_opt = torch.optim.SGD(weights, lr=0.1, momentum=0.9, weight_decay=3e-4, foreach=True)
        arch = Architect(net, lr=6e-4)

        def arch_step() -> None:
            with autocast(args.precision, device):
                arch.step(x, y)

        def weight_step() -> None:
            search_step(net, net, arch, w_opt, x, y, None, grad_clip=5.0, precision=args.precision, weights=weights)

    def eval_step() -> None:
        net.eval()
        with torch.no_grad(), autocast("fp32" if baseline else args.precision, device):
            net(x)
        net.train()

    return arch_step, weight_step, eval_step


def train_stepper(args: argparse.Namespace, baseline: bool, device: torch.device, compiled: bool = False) -> Any:
    """One training step of the PC_DARTS_cifar network (auxiliary head on), as ``engine.train_step`` runs it."""
    from ..nas.genotype import GENOTYPES
    from ..nas.network import build_network

    torch.manual_seed(0)
    model = build_network(
        GENOTYPES["PC_DARTS_cifar"],
        num_classes=10,
        init_channels=args.train_channels,
        layers=args.train_layers,
        auxiliary=True,
    ).to(device)
    if baseline:
        to_reference(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4, foreach=not baseline)
    params = list(model.parameters())
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    forward = torch.compile(model) if compiled else model
    precision = "fp32" if baseline else args.precision

    def tstep() -> None:
        train_step(forward, opt, params, x, y, grad_clip=5.0, auxiliary_weight=0.4, precision=precision)

    return tstep


def layout_bench(args: argparse.Namespace) -> dict[str, Any]:
    """The final network's training step (``engine.train_step``) in each memory layout, alternated in one
    process from one seed: what ``--memory-format auto`` decides from. ``--in-channels`` 1 for grey images."""
    from ..nas.genotype import GENOTYPES
    from ..nas.network import build_network

    device = torch.device(args.device)
    layouts = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    steppers = {}
    for name, fmt in layouts.items():
        torch.manual_seed(0)
        model = build_network(
            GENOTYPES["PC_DARTS_cifar"],
            num_classes=10,
            in_channels=args.in_channels,
            init_channels=args.train_channels,
            layers=args.train_layers,
            auxiliary=False,
        ).to(device)
        model.set_memory_format(fmt)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4, foreach=True)
        x = torch.randn(args.batch, args.in_channels, args.size, args.size, device=device)
        y = torch.randint(0, 10, (args.batch,), device=device)

        def tstep(model: Any = model, opt: Any = opt, x: torch.Tensor = x, y: torch.Tensor = y) -> None:
            train_step(model, opt, list(model.parameters()), x, y, grad_clip=5.0, auxiliary_weight=0.0)

        steppers[name] = tstep
    for fn in steppers.values():  # warm-up
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(args.repeats):
        for name, fn in steppers.items():
            times[name] += timeit(fn, 1, 0, device)
    rows = {name: summarise_times(t, args.batch) for name, t in times.items()}
    return {
        "benchmark": "train layout",
        "config": vars(args),
        "machine": machine(),
        "rows": rows,
        "channels_last_speedup": rows["contiguous"]["median_s"] / rows["channels_last"]["median_s"],
    }


def memory_one(args: argparse.Namespace, k: int) -> dict[str, Any]:
    """Saved activations and the peak of one search step (arch + weight) at one K, in this process."""
    device = torch.device(args.device)
    # the peak first: a forward pass before it would raise the high-water mark it is measured against
    peak = step_peak(args, getattr(args, "mode", "optimised") == "baseline", k=k)["search_peak_mib"]
    net, x, y = build(args, k, device, getattr(args, "recompute", "none"))
    if getattr(args, "mode", "optimised") == "baseline":
        to_reference(net)
    saved = saved_activation_bytes(net, x, y)
    return {"k": k, "saved_activations_mib": saved / 2**20, "peak_step_mib": peak}


def step_peak(args: argparse.Namespace, baseline: bool, k: int | None = None) -> dict[str, Any]:
    """Peak memory of one search step (growth over what the model and data hold), in a process of its own."""
    device = torch.device(args.device)
    if k is not None:
        args = argparse.Namespace(**{**vars(args), "k": k})
    arch_step, weight_step, _ = search_stepper(args, baseline, device, getattr(args, "recompute", "none"))
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    before = rss_mib()
    arch_step()
    weight_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = rss_mib() - before
    return {"mode": "baseline" if baseline else "optimised", "search_peak_mib": peak}


def search_times(args: argparse.Namespace, baseline: bool) -> dict[str, float]:
    """One mode's search step (arch + weight): warmed up once, then timed ``repeats`` times."""
    device = torch.device(args.device)
    arch_step, weight_step, _ = search_stepper(args, baseline, device, getattr(args, "recompute", "none"))
    arch_step()
    weight_step()
    times = [timeit(arch_step, 1, 0, device)[0] + timeit(weight_step, 1, 0, device)[0] for _ in range(args.repeats)]
    return summarise_times(times, args.batch)


def timeit(fn: Any, repeats: int, warmup: int, device: torch.device) -> list[float]:
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


def step_times(args: argparse.Namespace) -> dict[str, Any]:
    """Both modes in one process, steps alternated (A B A B ...) so machine noise hits both alike."""
    device = torch.device(args.device)
    modes = [False, True] if args.baseline else [False]
    out: dict[str, Any] = {b: {} for b in modes}
    searchers = {b: search_stepper(args, b, device, getattr(args, "recompute", "none")) for b in modes}
    parts: dict[bool, dict[str, list[float]]] = {b: {"arch": [], "weight": [], "eval": []} for b in modes}
    for b in modes:  # warm-up
        for fn in searchers[b]:
            fn()
    for _ in range(args.repeats):
        for b in modes:
            for name, fn in zip(("arch", "weight", "eval"), searchers[b]):
                parts[b][name] += timeit(fn, 1, 0, device)
    for b in modes:
        p = parts[b]
        out[b]["search"] = summarise_times([a + w for a, w in zip(p["arch"], p["weight"])], args.batch)
        out[b]["weight_step"] = summarise_times(p["weight"], args.batch)
        out[b]["eval_step"] = summarise_times(p["eval"], args.batch)
    del searchers
    trainers = {b: train_stepper(args, b, device) for b in modes}
    for b in modes:
        trainers[b]()
    times: dict[bool, list[float]] = {b: [] for b in modes}
    for _ in range(args.repeats):
        for b in modes:
            times[b] += timeit(trainers[b], 1, 0, device)
    for b in modes:
        out[b]["train"] = summarise_times(times[b], args.batch)
    return {("baseline" if b else "optimised"): v for b, v in out.items()}


def fanout_bench(args: argparse.Namespace) -> dict[str, Any]:
    """The supernet with each state's edges computed together (``fanout``) and edge by edge: the search step
    (arch + weight) and an evaluation forward, alternated in one process, same parameters."""
    device = torch.device(args.device)
    recompute = getattr(args, "recompute", "none")
    modes = {"fan-out": False, "edge by edge": True}
    steppers = {name: search_stepper(args, False, device, recompute, edge_by_edge=e) for name, e in modes.items()}
    for fns in steppers.values():  # warm-up
        for fn in fns:
            fn()
    parts: dict[str, dict[str, list[float]]] = {name: {"arch": [], "weight": [], "eval": []} for name in modes}
    for _ in range(args.repeats):
        for name, fns in steppers.items():
            for part, fn in zip(("arch", "weight", "eval"), fns):
                parts[name][part] += timeit(fn, 1, 0, device)
    rows = {
        name: {
            "search": summarise_times([a + w for a, w in zip(p["arch"], p["weight"])], args.batch),
            "eval_step": summarise_times(p["eval"], args.batch),
        }
        for name, p in parts.items()
    }
    return {
        "benchmark": "fan-out",
        "config": vars(args),
        "machine": machine(),
        "rows": rows,
        "search_speedup": rows["edge by edge"]["search"]["median_s"] / rows["fan-out"]["search"]["median_s"],
        "eval_speedup": rows["edge by edge"]["eval_step"]["median_s"] / rows["fan-out"]["eval_step"]["median_s"],
    }


def project_search_minutes(row: dict[str, Any], args: argparse.Namespace) -> float:
    """Minutes for a whole search at the measured step times (data loading and checkpoints not counted).

    The default protocol is the paper's CIFAR-10 search: 25,000 training and 25,000 validation images,
    50 epochs of which the first 15 are warm-up (weight steps only), an evaluation pass every epoch.
    """
    steps = math.ceil(args.project_images / args.batch)
    search, weight, evals = row["search"]["median_s"], row["weight_step"]["median_s"], row["eval_step"]["median_s"]
    warm, epochs = args.project_warmup, args.project_epochs
    return steps * (warm * weight + (epochs - warm) * search + epochs * evals) / 60.0


def regional_search_stepper(args: argparse.Namespace, device: torch.device) -> Any:
    """The search step (arch + weight) with the edges of each state compiled on their own (regional compile)."""
    from ..nas.fanout import FanOut

    net, x, y = build(args, args.k, device)
    # one graph per group size, map size and step kind: dynamo's default of 8 would leave the rest eager
    torch._dynamo.config.recompile_limit = 128
    for m in net.modules():
        if isinstance(m, FanOut):
            m.compile(dynamic=False)  # one graph per shape: symbolic sizes broke Inductor here (torch 2.13)
    weights = net.weight_parameters()
    w_opt = torch.optim.SGD(weights, lr=0.1, momentum=0.9, weight_decay=3e-4, foreach=True)
    arch = Architect(net, lr=6e-4)
    return lambda: search_step(net, net, arch, w_opt, x, y, (x, y), grad_clip=5.0, weights=weights)


def compile_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Eager vs ``torch.compile``, steps alternated in one process: the final network's training step, or
    with ``--regional`` the supernet's search step with each ``FanOut`` (a state's edges) compiled."""
    device = torch.device(args.device)
    if getattr(args, "regional", False):
        arch_step, weight_step, _ = search_stepper(args, False, device)

        def eager() -> None:
            arch_step()
            weight_step()

        compiled = regional_search_stepper(args, device)
    else:
        eager = train_stepper(args, False, device, compiled=False)
        compiled = train_stepper(args, False, device, compiled=True)
    t = time.perf_counter()
    compiled()
    first = time.perf_counter() - t
    eager()
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(args.repeats):
        times["eager"] += timeit(eager, 1, 0, device)
        times["compiled"] += timeit(compiled, 1, 0, device)
    rows = {k: summarise_times(v, args.batch) for k, v in times.items()}
    return {
        "benchmark": "torch.compile "
        + ("of each state's edges, search step" if getattr(args, "regional", False) else "train step"),
        "config": vars(args),
        "machine": machine(),
        "first_compiled_step_s": first,
        "rows": rows,
        "compiled_speedup": rows["eager"]["median_s"] / rows["compiled"]["median_s"],
    }
