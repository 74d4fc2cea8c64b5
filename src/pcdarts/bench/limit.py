"""How close a step runs to the machine's limit: the device's measured peak, a step's FLOPs, its GFLOP/s.

The peak is the faster of a large matmul (1024^3) and a dense 3x3 convolution (128 channels, 32x32, batch 32)
at the run's threads and precision; a step's FLOPs are PyTorch's FlopCounterMode count of its forward and
backward convolutions and matmuls (BN, pooling, additions not counted); the step time is the median of repeats
after warm-up. The fraction of peak says what a faster kernel could still buy and what per-call overhead costs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ..nas.architect import Architect
from ..nas.genotype import GENOTYPES
from ..nas.network import build_network
from ..runs.config import SearchConfig, build_search_network
from ..runs.engine import search_step, sgd_impl


def _timed(fn: Any, repeats: int, device: torch.device) -> float:
    fn()  # warm-up: allocation, kernel choice
    out = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def peak(device: torch.device, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a 1024^3 matmul and of a dense 128-channel 3x3 convolution; the larger is the peak."""
    a, b = torch.randn(1024, 1024, device=device), torch.randn(1024, 1024, device=device)
    matmul = 2 * 1024**3 / _timed(lambda: a @ b, repeats, device) / 1e9
    x, w = torch.randn(32, 128, 32, 32, device=device), torch.randn(128, 128, 3, 3, device=device)
    conv_flops = 2 * 32 * 128 * 128 * 9 * 32 * 32
    conv = conv_flops / _timed(lambda: F.conv2d(x, w, padding=1), repeats, device) / 1e9
    return {"matmul_gflops": matmul, "conv_gflops": conv, "peak_gflops": max(matmul, conv)}


def _count(fn: Any) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def search_step_fn(args: argparse.Namespace, device: torch.device) -> Any:
    """One search step (arch step then weight step) of the supernet at the benchmark's sizes, as a closure;
    ``args.cell`` picks the DARTS cell's supernet or NAS-Bench-201's."""
    torch.manual_seed(0)
    cell = getattr(args, "cell", "darts")
    cfg = SearchConfig(init_channels=args.channels, layers=args.layers, k=args.k, cell=cell)
    net = build_search_network(cfg, num_classes=10, in_channels=3).to(device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    weights = net.weight_parameters()
    w_opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4, **sgd_impl(device))  # the search's
    arch = Architect(net, lr=6e-4)

    def step() -> None:
        search_step(net, net, arch, w_opt, x, y, (x, y), grad_clip=5.0, weights=weights)

    return step


def search_limit(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """FLOPs and median seconds of one search step."""
    step = search_step_fn(args, device)
    return {"flops": _count(step), "seconds": _timed(step, args.repeats, device)}


def train_limit(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """One training step of PC_DARTS_cifar's network at the benchmark's training sizes."""
    torch.manual_seed(0)
    net = build_network(GENOTYPES["PC_DARTS_cifar"], num_classes=10, in_channels=3, init_channels=args.train_channels,
                        layers=args.train_layers, auxiliary=False).to(device)  # fmt: skip
    opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, **sgd_impl(device))  # the training's
    batch, size = getattr(args, "train_batch", 0) or args.batch, getattr(args, "train_size", 0) or args.size
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    return {"flops": _count(step), "seconds": _timed(step, args.repeats, device)}


def limit_bench(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    top = peak(device, args.repeats)
    rows = {}
    for name, fn in (("search", search_limit), ("train", train_limit)):
        r = fn(args, device)
        r["gflops_per_s"] = r["flops"] / r["seconds"] / 1e9
        r["of_peak"] = r["gflops_per_s"] / top["peak_gflops"]
        rows[name] = r
    sizes = {name: getattr(args, name, None) for name in ("cell", "channels", "layers", "k", "batch", "size",
                                                          "train_channels", "train_layers")}  # fmt: skip
    sizes["train_batch"] = getattr(args, "train_batch", 0) or args.batch
    sizes["train_size"] = getattr(args, "train_size", 0) or args.size
    return {"peak": top, "steps": rows, "threads": torch.get_num_threads(), "device": str(device), "sizes": sizes}


def print_limit(res: dict[str, Any]) -> None:
    p = res["peak"]
    print(f"peak on {res['device']} ({res['threads']} threads): matmul {p['matmul_gflops']:.1f} GFLOP/s, "
          f"3x3 conv {p['conv_gflops']:.1f} GFLOP/s")  # fmt: skip
    z = res["sizes"]
    what = {
        "search": f"search, {z.get('cell') or 'darts'} supernet C{z['channels']}/{z['layers']} cells/K{z['k']}, "
        f"batch {z['batch']}, {z['size']} px",
        "train": f"training, PC_DARTS_cifar C{z['train_channels']}/{z['train_layers']}, batch {z['train_batch']}, "
        f"{z['train_size']} px",
    }
    print("| step | GFLOP a step | seconds | GFLOP/s | of peak |\n|---|---|---|---|---|")
    for name, r in res["steps"].items():
        print(
            f"| {what[name]} | {r['flops'] / 1e9:.2f} | {r['seconds']:.3f} | {r['gflops_per_s']:.1f} | "
            f"{r['of_peak']:.0%} |"
        )
