"""Each study file in studies/ is the protocol its published study ran: the settings it resolves to equal the
ones the study's folder pinned (study_config.json, fidelity_config.json). Run by ``make lint``; the test suite
makes its own fixtures and never reads the published studies.

usage: python studies/tools/check_studies.py      (exit 1 and a line per difference when a file drifted)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pcdarts.experiments.fidelity import FidelityConfig
from pcdarts.experiments.protocols import read_protocol, study_values
from pcdarts.experiments.study import StudyConfig

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = {
    "study1.toml": "docs/study/fmnist-cpu/study_config.json",
    "study2.toml": "docs/study2/fmnist/study_config.json",
    "study3.toml": "docs/study3/fmnist/study_config.json",
}


def main() -> int:
    bad = []
    for name, pin in PUBLISHED.items():
        values = study_values(ROOT / "studies" / name)
        values.pop("epochs_from_calibration", None)
        pinned = json.loads((ROOT / pin).read_text())
        if "epochs" not in values["train"]:  # Study II: its calibration chose the epochs the folder pinned
            values["train"]["epochs"] = pinned["train"]["epochs"]
        if StudyConfig(**values).to_dict() != pinned:
            bad.append(f"studies/{name} no longer resolves to {pin}")
    values = read_protocol(ROOT / "studies" / "study2-calibration.toml", "calibration")
    values["budgets"] = tuple(values["budgets"])
    pin = "docs/study2/fmnist/fidelity_config.json"
    if FidelityConfig(**values).to_dict() != json.loads((ROOT / pin).read_text()):
        bad.append(f"studies/study2-calibration.toml no longer resolves to {pin}")
    for line in bad:
        print(f"check_studies: {line}", file=sys.stderr)
    if not bad:
        print(f"check_studies: {len(PUBLISHED) + 1} study files equal their published pins")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
