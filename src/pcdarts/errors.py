"""One base class for every error the user can fix; anything else is a bug and keeps its traceback.

The CLI catches ``PCDartsError`` alone and prints its message as one line (exit code 2). Each
subclass is also a ``ValueError`` so library code that caught ValueError keeps working.
"""

from __future__ import annotations


class PCDartsError(Exception):
    """Bad input or an unusable file/folder: the message says what to do."""


class ConfigError(PCDartsError, ValueError):
    """Settings that cannot work together (caught in the config, before any work)."""


class RunError(PCDartsError, ValueError):
    """A run folder or checkpoint that cannot be used as asked."""
