"""What a run ran on and how it is made repeatable: seeds and RNG states, devices and threads,
versions and the git revision.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import RunError
from ..files import atomic_write_json, read_run_json

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- RNG state
def rng_state() -> dict[str, Any]:
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_device"] = torch.cuda.get_rng_state()  # this process's own device only (one per rank)
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda_device" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda_device"])
    elif "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])  # checkpoints written before the per-device state


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; ``deterministic`` also forbids nondeterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
    else:  # cuDNN picks the fastest kernels for the shapes it sees (the sizes of a run do not change)
        torch.backends.cudnn.benchmark = True


def configure_device(device: torch.device, deterministic: bool) -> None:
    """CUDA settings before any CUDA work (``--batch-size auto`` included): cuBLAS workspace for determinism,
    and TF32 for matmuls as cuDNN already uses for convolutions, so the fan-out's batched 1x1 convs and the
    convolutions they replace round alike."""
    if device.type != "cuda":
        return
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise RunError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"device {name} asked for, but CUDA is not available here: use --device cpu")
    return dev


def warn_if_busy(device: torch.device) -> bool:
    """Say so when other work already loads the CPU cores this run's threads need.

    OpenMP threads spin-wait for one another: a 2-thread step on a machine whose other core is busy
    was measured 5-100x slower here. Returns True when it warned.
    """
    if device.type != "cpu" or not hasattr(os, "getloadavg"):
        return False
    load, cores, threads = os.getloadavg()[0], os.cpu_count() or 1, torch.get_num_threads()
    if threads > 1 and load + threads > cores + 0.5:
        log.warning(
            "the machine is busy (load %.1f on %d cores) and this run uses %d threads: each step can be many "
            "times slower; run with --threads 1 (or wait for the other work)", load, cores, threads,
        )  # fmt: skip
        return True
    return False


def threads_for_load(device: torch.device) -> int | None:
    """No --threads and no OMP_NUM_THREADS: fewer threads when other work holds the cores, and say so.

    Returns the count chosen, or None when torch's default was kept. The count a run used is in its
    environment.json (``torch_threads``).
    """
    if device.type != "cpu" or not hasattr(os, "getloadavg"):
        return None
    load, cores, threads = os.getloadavg()[0], os.cpu_count() or 1, torch.get_num_threads()
    if threads > 1 and load + threads > cores + 0.5:
        n = max(1, min(threads, cores - int(round(load))))
        torch.set_num_threads(n)
        log.info("threads: %d (load %.1f on %d cores; give --threads N to choose)", n, load, cores)
        return n
    return None


def environment() -> dict[str, Any]:
    """What produced a run: versions, machine, device, git revision when available."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "argv": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    from .. import __version__

    env["pcdarts"] = __version__
    env["git"] = revision()
    return env


def write_environment(out: Path, **extra: Any) -> dict[str, Any]:
    """Write ``out/environment.json`` for this process; a run resumed by other code keeps who ran it before.

    A resume rewrites the file, so the revisions (and pcdarts versions) that ran earlier parts of the run are
    carried in ``earlier`` whenever they differ from this one: a run finished by two revisions says so. The
    caller removes the file first when the run starts afresh (``--overwrite`` does), so only parts of this
    run are named; a file without a ``git`` key was not written by a run and names nothing.
    """
    env = {**environment(), **extra}
    earlier: list[dict[str, Any]] = []
    f = out / "environment.json"
    if f.is_file():
        try:
            old = read_run_json(f)
        except RunError:
            old = {}
        earlier = earlier_runs(old)
        if "git" in old and (old.get("git"), old.get("pcdarts")) != (env["git"], env["pcdarts"]):
            earlier.append({k: old.get(k) for k in ("git", "pcdarts", "torch", "started")})
    if earlier:
        env["earlier"] = earlier
    atomic_write_json(f, env)
    return env


def earlier_runs(env: dict[str, Any]) -> list[dict[str, Any]]:
    """The well-formed entries of an environment.json's ``earlier`` (a hand-edited file may hold anything)."""
    kept = env.get("earlier")
    return [e for e in kept if isinstance(e, dict)] if isinstance(kept, list) else []


def revision() -> str | None:
    """The git commit of the code that runs (``+dirty`` when its sources differ from it), or None outside git."""
    here = Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=here)
        if head.returncode or not head.stdout.strip():
            return None
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "."], capture_output=True, timeout=5, cwd=here)
        return head.stdout.strip() + ("+dirty" if dirty.returncode == 1 else "")
    except (OSError, subprocess.SubprocessError):
        return None
