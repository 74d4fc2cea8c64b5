"""One base class for every error the user can fix; anything else is a bug and keeps its traceback.

The CLI catches ``PCDartsError`` alone and prints its message as one line (exit code 2). Each
subclass is also a ``ValueError`` so library code that caught ValueError keeps working.
"""

from __future__ import annotations

import re


class PCDartsError(Exception):
    """Bad input or an unusable file/folder: the message says what to do."""


class ConfigError(PCDartsError, ValueError):
    """Settings that cannot work together (caught in the config, before any work)."""


class RunError(PCDartsError, ValueError):
    """A run folder or checkpoint that cannot be used as asked."""


def first_line(exc: BaseException | str, limit: int = 160) -> str:
    """The one line a user sees for an exception (or a message): its first line, without terminal colour codes,
    cut at a word boundary; the exception's type when it has no text. Every one-line error goes through here."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if len(line) > limit:
        line = line[:limit].rsplit(" ", 1)[0] + " ..."
    return line
