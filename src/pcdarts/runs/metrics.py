"""What a run measures and keeps: its wall and CPU clock, counted on across resumes, and its metrics log
(JSONL, mirrored to TensorBoard when installed)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RunError
from ..files import append_line, atomic_write_bytes, log_lines
from .formats import epoch_of_line, upgrade_log_lines

log = logging.getLogger(__name__)


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


# ---------------------------------------------------------------- the folder


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
            lines = [raw.decode("utf-8", errors="replace") for raw in log_lines(self.path)]
            if old_format:
                lines = upgrade_log_lines(lines)
            keep = [ln for ln in lines if epoch_of_line(ln) <= resume_epoch]
            atomic_write_bytes(self.path, ("\n".join(keep) + "\n" if keep else "").encode())
        elif resume_epoch is None:
            atomic_write_bytes(self.path, b"")  # replaces a link at the path, never writes through it
        if tensorboard:
            tb = self.path.parent / "tb"
            if tb.is_symlink() or (tb.exists() and not tb.is_dir()):
                raise RunError(f"{tb} is a link or not a folder: pcdarts never writes through one; remove it")
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(tb))
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
