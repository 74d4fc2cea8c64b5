"""Files a run reads and writes, whole or not at all: atomic writes, bounded JSON and JSONL readers,
CRC-checked checkpoints, and opening files without following links.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import RunError, first_line


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


MAX_RUN_FILE = 64 << 20  # bytes of one JSON file read back from a run folder


def read_run_json(path: str | Path, *, expect: type = dict, fix: str = "restore it or delete the run") -> Any:
    """A JSON file read back from a run folder: size-capped, strict UTF-8, of the expected shape.

    Every failure is a RunError that names the file and ``fix``, what to do, never a traceback.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_RUN_FILE:
            raise RunError(f"{path} is {size:,} bytes, too large for a pcdarts file: {fix}")
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path} is missing: is {path.parent} a pcdarts run folder?") from None
    except UnicodeDecodeError:
        raise RunError(f"{path} is not UTF-8 text: {fix}") from None
    except (json.JSONDecodeError, RecursionError, ValueError):
        raise RunError(f"{path} is not readable JSON: {fix}") from None
    if not isinstance(data, expect):
        raise RunError(f"{path} holds a {type(data).__name__}, not a {expect.__name__}: {fix}")
    return data


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
            f"checkpoint {path} is damaged or not a checkpoint ({first_line(exc)}): use an intact copy"
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
        raise RunError(f"checkpoint {path} is corrupt or truncated ({first_line(exc)}); use an intact copy") from None
    except Exception as exc:  # torch raises many types for a damaged zip
        raise RunError(f"checkpoint {path} is corrupt or truncated ({first_line(exc)}); use an intact copy") from None
    if not isinstance(state, dict) or "kind" not in state:
        raise RunError(f"{path} is not a pcdarts checkpoint")
    return state


def require_keys(state: dict[str, Any], keys: tuple[str, ...], path: str | Path) -> None:
    """A checkpoint that loads but lacks what its kind needs is damaged: one line naming it, not a KeyError."""
    missing = [k for k in keys if k not in state]
    if missing:
        raise RunError(f"checkpoint {path} lacks {', '.join(missing)}: it is damaged or not written by pcdarts")


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


def quote(text: str, limit: int = 80) -> str:
    """User text in a message: repr'd, and cut to ``limit`` characters so one line stays one line."""
    r = repr(text)
    return r if len(r) <= limit else r[: limit - 5] + "...'" + f" ({len(text):,} chars)"


MAX_LOG_BYTES = 256 * 2**20  # a 10,000-epoch search logs about 50 MB of alpha/beta history


MAX_LOG_RECORDS = 100_000  # 10 records an epoch for 10,000 epochs
MAX_LOG_LINE = 4 * 2**20  # one epoch's record; far larger is not a pcdarts record


def log_lines(path: Path) -> list[bytes]:
    """The non-blank lines of a JSONL log ([] when absent), bounded: a log over ``MAX_LOG_BYTES`` or
    ``MAX_LOG_RECORDS`` lines is refused in one line (RunError), never read whole into memory first."""
    p = Path(path)
    if not p.is_file():
        return []
    size = p.stat().st_size
    if size > MAX_LOG_BYTES:
        raise RunError(f"{p} is {size:,} bytes, more than a pcdarts log holds: restore it or delete the run")
    lines = []
    with p.open("rb") as f:
        for raw in f:
            if raw.strip():
                lines.append(raw.rstrip(b"\r\n"))
            if len(lines) > MAX_LOG_RECORDS:  # memory is bounded by records, not bytes alone
                raise RunError(f"{p} holds more than {MAX_LOG_RECORDS:,} lines, more than a pcdarts log: restore it")
    return lines


def read_jsonl(path: Path, *, count_bad: bool = False) -> Any:
    """The records of a JSONL log ([] when absent); with ``count_bad``, (records, unreadable lines).

    Bounded as ``log_lines``; a line that is too long, too deeply nested or not a JSON object counts as
    unreadable, never as a traceback.
    """
    out, bad = [], 0
    for raw in log_lines(path):
        rec = parse_record(raw)
        if rec is None:
            bad += 1
        else:
            out.append(rec)
    return (out, bad) if count_bad else out


def parse_record(raw: bytes) -> dict[str, Any] | None:
    """One JSONL line as a dict, or None (too long, too deep, not JSON, not an object)."""
    if len(raw) > MAX_LOG_LINE:
        return None
    try:
        rec = json.loads(raw.decode("utf-8", errors="replace"))
    except (json.JSONDecodeError, RecursionError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` holds a pcdarts run, judged by what only pcdarts writes: an environment.json naming the
    pcdarts and torch versions, or a config.json of a search, training or selection. A user's folder that merely holds
    files called config.json or metrics.jsonl is not a run, so no flag can make pcdarts delete them."""
    env = _json_object(path / "environment.json")
    if env is not None and isinstance(env.get("pcdarts"), str) and "torch" in env:
        return True
    cfg = _json_object(path / "config.json")
    if cfg is not None and cfg.get("kind") == "select":
        return {"method", "tune_epochs", "search_arch_sha256"} <= set(cfg)
    return cfg is not None and cfg.get("kind") in ("search", "train") and {"dataset", "seed", "epochs"} <= set(cfg)


def _json_object(path: Path) -> dict[str, Any] | None:
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = read_run_json(path)
    except RunError:
        return None
    return data if isinstance(data, dict) else None


# Everything a run writes in its folder: --overwrite removes all of it, so nothing of the old run survives.
RUN_FILES = (
    "checkpoint.pt", "best.pt", "last.pt", "metrics.jsonl", "arch_history.jsonl", "arch.json", "genotype.json",
    "search_result.json", "result.json", "config.json", "environment.json", "report.html",
)  # fmt: skip


RESULT_FILES = (
    "select_result.json", "decisions.json", "select_config.json", "study.json", "study_config.json",
    "study_config_searches.json", "fidelity.json", "fidelity_config.json", "summary.json", "oneshot.json",
)  # fmt: skip
"""Results of selections, studies, calibrations and demos: a command's --out never writes over them either."""


def check_target(path: str | Path, *, overwrite: bool, allowed: tuple[str, ...] = ()) -> Path:
    """A file a command is about to write (an export, its metadata, a report): never one of a run's own files
    (its checkpoints, logs, results: ``RUN_FILES`` in a pcdarts run folder, ``allowed`` excepted), never a folder,
    and an existing file only with ``overwrite``. One-line ``RunError`` otherwise."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        raise RunError(f"{p} is a folder: give a file name")
    own = p.name in RUN_FILES and is_run_folder(p.parent)
    own = own or (p.name in RESULT_FILES and any((p.parent / f).is_file() for f in RESULT_FILES + RUN_FILES))
    if own and p.name not in allowed:
        raise RunError(f"{p} is one of its run's own files: pcdarts never writes over those; choose another name")
    if (p.exists() or p.is_symlink()) and not overwrite:
        raise RunError(f"{p} exists: pass --overwrite to replace it, or choose another name")
    return p
