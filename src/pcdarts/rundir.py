"""Run folders: atomic checkpoints, resume, the metrics log, RNG state, graceful stops."""

from __future__ import annotations

import errno
import fcntl
import io
import json
import logging
import os
import pickle
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import PCDartsError

log = logging.getLogger(__name__)


class RunError(PCDartsError, ValueError):
    """A run folder or checkpoint that cannot be used as asked."""


# ---------------------------------------------------------------- atomic files
def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600: keep the mode a plain open() would give
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's first line, without terminal colour codes, cut at a word boundary."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if len(line) > limit:
        line = line[:limit].rsplit(" ", 1)[0] + " ..."
    return line


MAX_RUN_FILE = 64 << 20  # bytes of one JSON file read back from a run folder


def read_run_json(path: str | Path, *, expect: type = dict) -> Any:
    """A JSON file read back from a run folder: size-capped, strict UTF-8, of the expected shape.

    Every failure is a RunError that names the file and what to do, never a traceback.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_RUN_FILE:
            raise RunError(f"{path} is {size:,} bytes, too large for a pcdarts file: restore it or delete the run")
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path} is missing: is {path.parent} a pcdarts run folder?") from None
    except UnicodeDecodeError:
        raise RunError(f"{path} is not UTF-8 text: restore it or delete the run") from None
    except (json.JSONDecodeError, RecursionError, ValueError):
        raise RunError(f"{path} is not readable JSON: restore it or delete the run") from None
    if not isinstance(data, expect):
        raise RunError(f"{path} holds a {type(data).__name__}, not a {expect.__name__}: restore it or delete the run")
    return data


FILE_FORMAT = 2
"""The run files' format. 2 numbers epochs from 1 in every file, as the console does; 1 (pcdarts before
2026-12-05) numbered them from 0 in files. Files of format 1 are read as format 2 (:func:`epochs_from_one`,
:func:`upgrade_epochs`), so old runs resume, extend, plot and report as they did."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def epochs_from_one(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A per-epoch log (metrics.jsonl, arch_history.jsonl) numbered from 1, whoever wrote it.

    Only format 1 wrote an epoch 0, so a log holding one is shifted by one as a whole.
    """
    if any(_epoch0(r) for r in records):
        return [{**r, "epoch": r["epoch"] + 1} if _has_epoch(r) else r for r in records]
    return records


def _has_epoch(record: Any) -> bool:
    return isinstance(record, dict) and _is_int(record.get("epoch"))


def _epoch0(record: Any) -> bool:
    return _has_epoch(record) and record["epoch"] == 0


def is_old_format(record: Any) -> bool:
    """A result or checkpoint written before :data:`FILE_FORMAT` 2 (it has no ``format`` key)."""
    return isinstance(record, dict) and "format" not in record


def upgrade_epochs(record: dict[str, Any]) -> dict[str, Any]:
    """A result (result.json, search_result.json, a checkpoint) with its epoch fields numbered from 1.

    Format 1 records carry no ``format`` key; their ``selected_epoch``, ``early_stop.epoch``,
    ``extended_from.selected_epoch`` and ``best.epoch`` counted from 0.
    """
    if not is_old_format(record):
        return record
    out = dict(record)
    if _is_int(out.get("selected_epoch")):
        out["selected_epoch"] += 1
    for key, field in (("early_stop", "epoch"), ("extended_from", "selected_epoch"), ("best", "epoch")):
        inner = out.get(key)
        if isinstance(inner, dict) and _is_int(inner.get(field)):
            out[key] = {**inner, field: inner[field] + 1}
    if isinstance(out.get("history"), list):
        out["history"] = epochs_from_one(out["history"])
    out["format"] = FILE_FORMAT
    return out


def upgrade_model_state(state: dict[str, Any]) -> dict[str, Any]:
    """A best.pt / last.pt state whose ``epoch`` (the model's epoch) counts from 1, as written since format 2."""
    if not is_old_format(state):
        return state
    out = dict(state, format=FILE_FORMAT)
    if _is_int(out.get("epoch")):
        out["epoch"] += 1
    return out


def read_result(path: str | Path) -> dict[str, Any]:
    """A run's result.json or search_result.json, its epochs numbered from 1 (:data:`FILE_FORMAT`)."""
    return upgrade_epochs(read_run_json(path))


def atomic_save_figure(fig: Any, path: str | Path, **kwargs: Any) -> Path:
    """Save a matplotlib figure whole or not at all: a look while a run writes, or a kill, never meets half a
    picture, and a failed drawing leaves the old one."""
    path = Path(path)
    buf = io.BytesIO()
    kwargs.setdefault("format", path.suffix.lstrip(".").lower() or "png")
    fig.savefig(buf, **kwargs)
    atomic_write_bytes(path, buf.getvalue())
    return path


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


class RunClock:
    """Wall and CPU seconds of a run, counted on from its checkpoint, so a resumed run reports its whole cost.

    CPU time is this process's (every thread of it; rank 0's under torchrun). It is None for a run resumed
    from a checkpoint written before CPU time was kept: the part before would be missing.
    """

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.t0 = time.time() - float(state.get("seconds", 0.0))
        self.cpu_known = not state or "cpu_seconds" in state
        self.c0 = time.process_time() - float(state.get("cpu_seconds", 0.0))

    def wall(self) -> float:
        return time.time() - self.t0

    def cpu(self) -> float | None:
        return time.process_time() - self.c0 if self.cpu_known else None

    def state(self) -> dict[str, float]:
        """What a checkpoint keeps to count on after a resume."""
        out = {"seconds": self.wall()}
        cpu = self.cpu()
        if cpu is not None:
            out["cpu_seconds"] = cpu
        return out


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def check_archive(path: Path) -> None:
    """Every member of a checkpoint's zip archive against its CRC: torch.load does not check them, so a
    damaged tensor would load as silent garbage (loss nan)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise RunError(
            f"checkpoint {path} is damaged or not a checkpoint ({_first_line(exc)}): use an intact copy"
        ) from None
    if bad is not None:
        raise RunError(f"checkpoint {path} is damaged ({quote(bad)} fails its CRC check): use an intact copy")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``; a missing, truncated or foreign file is a RunError."""
    path = Path(path)
    if path.is_dir():
        names = ["best.pt", "last.pt", "checkpoint.pt"]
        try:  # a finished training says which model it shipped (one of its own files, never a path elsewhere)
            shipped = read_run_json(path / "result.json")["shipped"]
            if shipped in ("best.pt", "last.pt"):
                names.insert(0, shipped)
        except (OSError, ValueError, KeyError, TypeError, RunError):
            pass
        for name in names:
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise RunError(f"no checkpoint (best.pt, last.pt, checkpoint.pt) in {path}")
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist")
    check_archive(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise RunError(
                f"{path} holds Python objects beyond tensors and plain data; refused for safety "
                "(only load checkpoints pcdarts wrote)"
            ) from None
        raise RunError(f"checkpoint {path} is corrupt or truncated ({_first_line(exc)}); use an intact copy") from None
    except Exception as exc:  # torch raises many types for a damaged zip
        raise RunError(f"checkpoint {path} is corrupt or truncated ({_first_line(exc)}); use an intact copy") from None
    if not isinstance(state, dict) or "kind" not in state:
        raise RunError(f"{path} is not a pcdarts checkpoint")
    return state


def require_keys(state: dict[str, Any], keys: tuple[str, ...], path: str | Path) -> None:
    """A checkpoint that loads but lacks what its kind needs is damaged: one line naming it, not a KeyError."""
    missing = [k for k in keys if k not in state]
    if missing:
        raise RunError(f"checkpoint {path} lacks {', '.join(missing)}: it is damaged or not written by pcdarts")


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
    from . import __version__

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


# ---------------------------------------------------------------- the folder
class RunBusy(RunError):
    """The folder is locked by another live process (a study's other worker may take the next unit)."""


class RunLock:
    """One process per run folder: an OS lock (``flock``) on its ``.lock`` file, which holds the owner's pid.

    The kernel drops the lock when its process dies, so a lock left by a killed run is free again, and
    two processes can never both take it. A folder this lock created and that is still empty when the
    run ends (a start that failed) is removed again.
    """

    NAME = ".lock"

    def __init__(self, path: str | Path, *, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled
        self.file = self.path / self.NAME
        self.created = False
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        if not self.enabled:
            return self
        check_out_path(self.path)
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"output path {self.path} is a file, not a folder: choose another --out")
        self.created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            fd = open_no_follow(self.file, os.O_CREAT | os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                owner = self._owner()
                raise RunBusy(
                    f"{self.path} is in use by process {owner if owner is not None else '(unknown)'}: wait for it "
                    "to finish or choose another --out"
                ) from None
            try:  # the file we locked must still be the one at the path (its last owner may have removed it)
                same = os.fstat(fd).st_ino == os.stat(self.file).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            self.fd = fd
            return self
        raise RunError(f"could not lock {self.path}: another process keeps taking it; try again")

    def _owner(self) -> int | None:
        try:
            return int(self.file.read_text().strip())
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc: Any) -> None:
        if not self.enabled or self.fd is None:
            return
        self.file.unlink(missing_ok=True)  # removed while still locked: a waiting process re-checks the inode
        os.close(self.fd)
        self.fd = None
        if self.created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()


def open_no_follow(path: Path, flags: int) -> int:
    """``os.open`` that never writes through a link or into a device: run folders are copied, shared and unpacked
    from archives, and a link in one must not make pcdarts write outside it. Refused in one line."""
    import stat

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise RunError(f"{path} is {kind}: pcdarts never writes through one; remove it and run again")
    try:
        return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0), 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a link between the check and the open
            raise RunError(f"{path} is a link: pcdarts never writes through one; remove it and run again") from None
        raise


def append_line(path: Path, line: str) -> None:
    """Append one line to a run's log without following a link (a dangling one would create a file elsewhere)."""
    fd = open_no_follow(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND)
    with os.fdopen(fd, "a") as f:
        f.write(line + "\n")


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` holds a pcdarts run, judged by what only pcdarts writes: an environment.json naming the
    pcdarts and torch versions, or a config.json of a search or training. A user's folder that merely holds
    files called config.json or metrics.jsonl is not a run, so no flag can make pcdarts delete them."""
    env = _json_object(path / "environment.json")
    if env is not None and isinstance(env.get("pcdarts"), str) and "torch" in env:
        return True
    cfg = _json_object(path / "config.json")
    return cfg is not None and cfg.get("kind") in ("search", "train") and {"dataset", "seed", "epochs"} <= set(cfg)


def _json_object(path: Path) -> dict[str, Any] | None:
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = read_run_json(path)
    except RunError:
        return None
    return data if isinstance(data, dict) else None


def _transient(name: str) -> bool:
    """The lock, and the temporary files of an atomic write a killed run left behind."""
    return name == RunLock.NAME or (name.startswith(".") and name.endswith(".tmp"))


def quote(text: str, limit: int = 80) -> str:
    """User text in a message: repr'd, and cut to ``limit`` characters so one line stays one line."""
    r = repr(text)
    return r if len(r) <= limit else r[: limit - 5] + "...'" + f" ({len(text):,} chars)"


# Everything a run writes in its folder: --overwrite removes all of it, so nothing of the old run survives.
RUN_FILES = (
    "checkpoint.pt", "best.pt", "last.pt", "metrics.jsonl", "arch_history.jsonl", "arch.json", "genotype.json",
    "search_result.json", "result.json", "config.json", "environment.json", "report.html",
)  # fmt: skip


def check_target(path: str | Path, *, overwrite: bool, allowed: tuple[str, ...] = ()) -> Path:
    """A file a command is about to write (an export, its metadata, a report): never one of a run's own files
    (its checkpoints, logs, results: ``RUN_FILES`` in a pcdarts run folder, ``allowed`` excepted), never a folder,
    and an existing file only with ``overwrite``. One-line ``RunError`` otherwise."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        raise RunError(f"{p} is a folder: give a file name")
    if p.name in RUN_FILES and p.name not in allowed and is_run_folder(p.parent):
        raise RunError(f"{p} is one of its run's own files: pcdarts never writes over those; choose another name")
    if (p.exists() or p.is_symlink()) and not overwrite:
        raise RunError(f"{p} exists: pass --overwrite to replace it, or choose another name")
    return p


def check_out_path(path: str | Path) -> None:
    """Refuse targets no run should be written into: the filesystem root, a top-level folder, the home folder."""
    try:
        p = Path(path).expanduser().resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop, or a path the system cannot resolve
        raise RunError(
            f"output path {quote(str(path))} cannot be resolved ({_first_line(exc)}): choose another --out"
        ) from None
    if p == Path(p.anchor) or p.parent == Path(p.anchor) or p == Path.home().resolve():
        raise RunError(f"refusing to write a run into {p}: give it a folder of its own, e.g. --out runs/NAME")


class RunDir:
    """One run's folder. Refuses to clobber earlier results unless told to, and never touches other files."""

    def __init__(self, path: str | Path, *, kind: str, resume: bool = False, overwrite: bool = False, final: str):
        self.path = Path(path)
        self.kind, self.final = kind, final
        self.checkpoint = self.path / "checkpoint.pt"
        check_out_path(self.path)
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"output path {self.path} is a file, not a folder: choose another --out")
        if resume:
            if not self.checkpoint.is_file():
                raise RunError(f"nothing to resume: {self.checkpoint} does not exist (drop --resume to start fresh)")
        elif self.path.exists() and any(not _transient(e.name) for e in self.path.iterdir()):
            if not is_run_folder(self.path):
                found = [e.name for e in self.path.iterdir() if not _transient(e.name)]
                shown = ", ".join(quote(n) for n in sorted(found)[:4]) + (", ..." if len(found) > 4 else "")
                raise RunError(
                    f"{self.path} is not empty and holds no pcdarts run ({shown}): --out wants a new or empty "
                    "folder, or a pcdarts run with --resume / --overwrite"
                )
            if not overwrite:
                state = "a finished run" if (self.path / final).is_file() else "an unfinished run"
                raise RunError(
                    f"{self.path} already holds {state}: pass --resume to continue it or --overwrite to replace it"
                )
            for name in RUN_FILES + (final,):  # the run's own files only: anything else in the folder stays
                p = self.path / name
                if p.is_file() or p.is_symlink():
                    p.unlink()
            tb = self.path / "tb"
            if tb.is_dir() and not tb.is_symlink():
                for f in tb.glob("events.out.tfevents.*"):
                    f.unlink()
                if not any(tb.iterdir()):
                    tb.rmdir()
        self.path.mkdir(parents=True, exist_ok=True)


class MetricsLog:
    """Append-only JSONL metrics, mirrored to TensorBoard when it is installed."""

    def __init__(
        self,
        path: Path,
        *,
        resume_epoch: int | None = None,
        tensorboard: bool = True,
        enabled: bool = True,
        old_format: bool = False,
    ):
        """``old_format``: the run's checkpoint predates format 2, so a log still counted from 0 is renumbered."""
        self.path = Path(path)
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        if resume_epoch is not None and self.path.is_file():  # drop records past the checkpoint
            size = self.path.stat().st_size
            if size > MAX_LOG_BYTES:
                raise RunError(f"{self.path} is {size:,} bytes, more than a pcdarts log holds: restore it")
            lines = [ln for ln in self.path.read_text(errors="replace").splitlines() if ln.strip()]
            # format 1 counted from 0: renumber as this run goes on. Only while an epoch 0 is left, so a
            # log renumbered by a resume killed before its next checkpoint is not shifted twice.
            if old_format and any(_epoch0(_parsed(ln)) for ln in lines):
                lines = [_shifted(ln) for ln in lines]
            keep = [ln for ln in lines if _epoch_of(ln) <= resume_epoch]
            atomic_write_bytes(self.path, ("\n".join(keep) + "\n" if keep else "").encode())
        elif resume_epoch is None:
            atomic_write_bytes(self.path, b"")  # replaces a link at the path, never writes through it
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.path.parent / "tb"))
            except Exception:  # tensorboard is an optional extra
                log.info("tensorboard not installed: metrics go to %s only", self.path)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        append_line(self.path, json.dumps(record))
        if self.tb is not None:
            step = int(record.get("epoch", 0))
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "epoch":
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()

    def image(self, tag: str, img: np.ndarray, step: int) -> None:
        if self.tb is not None:
            self.tb.add_image(tag, img, step, dataformats="HWC")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _parsed(line: str) -> Any:
    return _record(line.encode())


def _shifted(line: str) -> str:
    rec = _parsed(line)
    if isinstance(rec, dict) and _is_int(rec.get("epoch")):
        rec["epoch"] += 1
        return json.dumps(rec)
    return line


def _epoch_of(line: str) -> int:
    rec = _record(line.encode())
    try:
        return 1 << 30 if rec is None else int(rec.get("epoch", -1))
    except (TypeError, ValueError, OverflowError):
        return 1 << 30


def read_epoch_log(path: Path, *, count_bad: bool = False) -> Any:
    """A per-epoch JSONL log (metrics.jsonl, arch_history.jsonl), its epochs numbered from 1 in any format."""
    records, bad = read_jsonl(path, count_bad=True)
    records = epochs_from_one(records)
    return (records, bad) if count_bad else records


MAX_LOG_BYTES = 256 * 2**20  # a 10,000-epoch search logs about 50 MB of alpha/beta history
MAX_LOG_LINE = 4 * 2**20  # one epoch's record; far larger is not a pcdarts record


def read_jsonl(path: Path, *, count_bad: bool = False) -> Any:
    """The records of a JSONL log ([] when absent); with ``count_bad``, (records, unreadable lines).

    Read line by line with bounds: a log over ``MAX_LOG_BYTES`` is refused in one line, and a line that is too
    long, too deeply nested or not a JSON object counts as unreadable, never as a traceback.
    """
    out, bad = [], 0
    p = Path(path)
    if not p.is_file():
        return (out, bad) if count_bad else out
    size = p.stat().st_size
    if size > MAX_LOG_BYTES:
        raise RunError(f"{p} is {size:,} bytes, more than a pcdarts log holds: restore it or delete the run")
    with p.open("rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            rec = _record(raw)
            if rec is None:
                bad += 1
            else:
                out.append(rec)
    return (out, bad) if count_bad else out


def _record(raw: bytes) -> dict[str, Any] | None:
    """One JSONL line as a dict, or None (too long, too deep, not JSON, not an object)."""
    if len(raw) > MAX_LOG_LINE:
        return None
    try:
        rec = json.loads(raw.decode("utf-8", errors="replace"))
    except (json.JSONDecodeError, RecursionError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


class GracefulStop:
    """First SIGINT/SIGTERM: ask the loop to stop after this step. Second: exit at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> GracefulStop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            sys.stderr.write("pcdarts: second signal, exiting now without a checkpoint\n")
            os._exit(130)
        self.requested = True
        sys.stderr.write("\npcdarts: stopping after this step (signal again to exit at once)\n")

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
