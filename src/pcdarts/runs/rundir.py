"""Run folders: what a folder must be to hold a run, its lock against a second process, and its files."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import RunError, first_line
from ..files import (
    RUN_FILES,
    is_run_folder,
    open_no_follow,
    quote,
)

log = logging.getLogger(__name__)


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


def _transient(name: str) -> bool:
    """The lock, and the temporary files of an atomic write a killed run left behind."""
    return name == RunLock.NAME or (name.startswith(".") and name.endswith(".tmp"))


def check_out_path(path: str | Path) -> None:
    """Refuse targets no run should be written into: the filesystem root, a top-level folder, the home folder."""
    try:
        p = Path(path).expanduser().resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop, or a path the system cannot resolve
        raise RunError(
            f"output path {quote(str(path))} cannot be resolved ({first_line(exc)}): choose another --out"
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
