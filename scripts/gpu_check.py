"""The GPU checks of one prepared run (scripts/gpu_check.sh calls each part with its own timeout).

Needs only torch and this repository (``PYTHONPATH=src``): no install, no downloads, synthetic data.
Each part writes one JSON file into the output folder and prints one line. ``--device cpu`` runs the
same code on a CPU, small, as a smoke test (tests/bench/test_bench.py).

Parts: env (versions and which optional packages import), numerics (fanned cell vs edge by edge and the custom
kernels vs the reference habits, float64 on the device; both ways under bf16 autocast against fp32), syncs
(host-device synchronisations in a few search steps, counted with torch.cuda.set_sync_debug_mode), run (a
2-epoch search and a 1-epoch training on CIFAR-shaped synthetic data), project (the 50-epoch CIFAR-10 search
time projected from a step time).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F


def part_env(args: argparse.Namespace) -> dict[str, Any]:
    mods = {}
    for name in ("numpy", "tqdm", "PIL", "sklearn", "matplotlib", "pytest", "onnxruntime", "tensorboard"):
        try:
            mod = importlib.import_module(name)
            mods[name] = getattr(mod, "__version__", "yes")
        except ImportError:
            mods[name] = None
    cuda = torch.cuda.is_available()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else None,
        "bf16": torch.cuda.is_bf16_supported() if cuda else None,
        "modules": mods,
    }


def _supernet(device: torch.device, k: int, dtype: torch.dtype) -> Any:
    from pcdarts.nas.supernet import SearchNetwork

    torch.manual_seed(0)
    net = SearchNetwork(num_classes=5, init_channels=8, layers=3, k=k).to(device=device, dtype=dtype)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.normal_()
    return net


def _max_diff(a: Any, b: Any) -> float:
    return max(float((x - y).detach().abs().max()) for x, y in zip(a, b))


def part_numerics(args: argparse.Namespace) -> dict[str, Any]:
    """float64 on the device: the fan-out against edge by edge, the lean kernels against the reference habits."""
    from pcdarts.bench.reference import to_reference
    from pcdarts.nas.supernet import SearchCell

    device = torch.device(args.device)
    out: dict[str, Any] = {}
    x = torch.randn(3, 3, 13, 13, dtype=torch.float64, device=device)
    y = torch.tensor([0, 1, 4], device=device)
    for k in (1, 4):
        net = _supernet(device, k, torch.float64)
        twin = copy.deepcopy(net)
        res = []
        original = SearchCell._fans_out
        try:
            for model in (net, twin):
                logits = model(x)
                grads = torch.autograd.grad(F.cross_entropy(logits, y), list(model.parameters()))
                res.append([logits, *grads])
                SearchCell._fans_out = lambda self, h: False  # the twin runs edge by edge
        finally:
            SearchCell._fans_out = original
        out[f"fanout_vs_edges_k{k}_max_abs_diff"] = _max_diff(res[0], res[1])
        ref = to_reference(copy.deepcopy(net))
        res = []
        for model in (net, ref):
            logits = model(x)
            params = model.weight_parameters() + model.arch_parameters()
            res.append([logits, *torch.autograd.grad(F.cross_entropy(logits, y), params)])
        out[f"lean_vs_reference_k{k}_max_abs_diff"] = _max_diff(res[0], res[1])
    out["ok"] = all(v < 1e-8 for v in out.values())
    # bf16 autocast: the fan-out and edge by edge against fp32, judged as tests/nas/test_fanout.py judges them;
    # a failure here is recorded beside the float64 results, not in place of them
    from pcdarts.bench.reference import AUTOCAST_BOUNDS, autocast_errors
    from pcdarts.nas.supernet import SearchNetwork

    try:
        torch.manual_seed(0)
        net = SearchNetwork(num_classes=5, init_channels=16, layers=5, k=4).to(device)
        xb, yb = torch.randn(8, 3, 16, 16, device=device), torch.randint(0, 5, (8,), device=device)
        errors = autocast_errors(net, xb, yb, "bf16")
        fan, edge = errors["fan-out"], errors["edge by edge"]
        errors["ok"] = errors["fanned_cells"] > 0 and all(
            fan[k] <= 2 * edge[k] and max(fan[k], edge[k]) <= b for k, b in AUTOCAST_BOUNDS.items()
        )
    except Exception as exc:  # noqa: BLE001 -- keep the float64 results and say what failed
        errors = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    out["bf16_vs_fp32"] = errors
    return out


def part_syncs(args: argparse.Namespace) -> dict[str, Any]:
    """Host-device synchronisations during search steps (CUDA only; 0 on CPU by definition)."""
    from pcdarts.nas.architect import Architect
    from pcdarts.runs.engine import search_step, sgd_impl

    device = torch.device(args.device)
    net = _supernet(device, 4, torch.float32)
    arch = Architect(net, lr=6e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9, **sgd_impl(device))
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 5, (args.batch,), device=device)
    search_step(net, net, arch, opt, x, y, (x, y), grad_clip=5.0)  # warm-up, outside the count
    if device.type != "cuda":
        return {"syncs_per_step": 0, "note": "not a CUDA device"}
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(3):
                search_step(net, net, arch, opt, x, y, (x, y), grad_clip=5.0)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    where: dict[str, int] = {}
    for w in caught:
        key = f"{Path(w.filename).name}:{w.lineno}"
        where[key] = where.get(key, 0) + 1
    return {"syncs_per_step": len(caught) / 3, "where": where}


def part_run(args: argparse.Namespace) -> dict[str, Any]:
    """A 2-epoch search and a 1-epoch training through the real runner, CIFAR-shaped synthetic data."""
    from pcdarts.runs.config import SearchConfig, TrainConfig
    from pcdarts.runs.search import run_search
    from pcdarts.runs.train import run_train

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        scfg = SearchConfig(dataset="synthetic", image_size=32, init_channels=args.channels, layers=args.layers,
                            epochs=2, warmup_epochs=1, batch_size=args.batch, device=args.device)  # fmt: skip
        res = run_search(scfg, Path(tmp) / "s", progress=False)
        out["search_seconds"] = time.time() - t0
        out["genotype"] = res["genotype"]
        t0 = time.time()
        tcfg = TrainConfig(dataset="synthetic", image_size=32, init_channels=args.channels, layers=args.layers,
                           epochs=1, batch_size=args.batch, device=args.device,
                           genotype=str(Path(tmp) / "s"))  # fmt: skip
        res = run_train(tcfg, Path(tmp) / "t", progress=False)
        out["train_seconds"] = time.time() - t0
        out["test_accuracy"] = res["test_accuracy"]
    if torch.cuda.is_available() and torch.device(args.device).type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        from pcdarts.runs.memory import auto_batch_size

        t0 = time.time()
        batch, info = auto_batch_size(scfg, in_channels=3, size=32, num_classes=10, device=torch.device(args.device),
                                      cap=1024)  # fmt: skip
        out["auto_batch"] = {"batch": batch, "predicted_per_sample_mib": info["per_sample_bytes"] / 2**20,
                             "seconds": time.time() - t0}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=["env", "numerics", "syncs", "run"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default="gpu_check")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--layers", type=int, default=8)
    args = p.parse_args(argv)
    res = {"env": part_env, "numerics": part_numerics, "syncs": part_syncs, "run": part_run}[args.part](args)
    res["device"] = args.device
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"{args.part}.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"{args.part}: {json.dumps({k: v for k, v in res.items() if k not in ('modules', 'where', 'genotype')})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
