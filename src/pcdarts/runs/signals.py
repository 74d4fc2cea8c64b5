"""Stopping a run by signal: the first SIGINT/SIGTERM asks the loop to stop at a checkpoint, a second exits."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


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
