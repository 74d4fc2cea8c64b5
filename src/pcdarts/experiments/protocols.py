"""Study and calibration protocols as files (``studies/*.toml`` in the repository): data, arms, settings,
seeds and the verdict's rule in one file a reader can open, instead of presets inside the library.

``pcdarts study --config FILE`` and ``pcdarts fidelity --config FILE`` read them; the old preset names
(``--preset fmnist-study2``) still work where the repository's ``studies/`` folder is at hand.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from ..errors import ConfigError, first_line

OLD_NAMES = {
    "study": {"fmnist-cpu": "study1", "fmnist-study2": "study2", "fmnist-study3": "study3"},
    "calibration": {"fmnist-study2": "study2-calibration"},
}
"""The preset names the studies had before their protocols became files, and their files."""

MAX_PROTOCOL_BYTES = 1 << 20


def read_protocol(path: str | Path, kind: str) -> dict[str, Any]:
    """The settings of a protocol file of ``kind`` (``study`` or ``calibration``), without its ``kind`` key."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no protocol file {p}: give a .toml file (the repository's studies/ holds examples)")
    if p.stat().st_size > MAX_PROTOCOL_BYTES:
        raise ConfigError(f"{p} is {p.stat().st_size:,} bytes: too large for a protocol file")
    try:
        data = tomllib.loads(p.read_bytes().decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p} is not readable TOML ({first_line(exc)})") from None
    found = data.pop("kind", None)
    if found != kind:
        raise ConfigError(f"{p} is a {found!r} protocol, not a {kind!r} one (its kind = ... line says which)")
    return data


def study_values(path: str | Path) -> dict[str, Any]:
    """A study protocol as ``StudyConfig`` keyword arguments (arms as ``Arm``s), plus ``epochs_from_calibration``."""
    from .study import Arm

    values = read_protocol(path, "study")
    arms = values.get("arms", [])
    if not isinstance(arms, list) or not all(isinstance(a, dict) and isinstance(a.get("name"), str) for a in arms):
        raise ConfigError(f"{path}: arms must be [[arms]] tables, each with a name and overrides")
    values["arms"] = [Arm(a["name"], dict(a.get("overrides", {}))) for a in arms]
    return values


def preset_file(name: str, kind: str) -> Path:
    """The protocol file an old preset name stands for: ``studies/FILE.toml`` in the current folder or in the
    repository this package runs from (a pip install has none: then one line saying what to do)."""
    known = OLD_NAMES[kind]
    if name not in known:
        raise ConfigError(f"unknown {kind} preset {name!r}; choose one of: {', '.join(known)} (or --config FILE)")
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):  # the repository: src/pcdarts/experiments/..
        f = root / "studies" / f"{known[name]}.toml"
        if f.is_file():
            return f
    raise ConfigError(
        f"the {kind} preset {name!r} is the file studies/{known[name]}.toml of the pcdarts repository: run from a "
        "checkout, or pass --config FILE"
    )
