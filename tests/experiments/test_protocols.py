"""Study protocols are files beside the library (studies/*.toml): each one is the protocol its published study ran."""

import json
from pathlib import Path

import pytest

from pcdarts.cli import main
from pcdarts.errors import ConfigError
from pcdarts.experiments.fidelity import FidelityConfig
from pcdarts.experiments.protocols import preset_file, read_protocol, study_values
from pcdarts.experiments.study import StudyConfig

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = {
    "study1.toml": "docs/study/fmnist-cpu/study_config.json",
    "study2.toml": "docs/study2/fmnist/study_config.json",
    "study3.toml": "docs/study3/fmnist/study_config.json",
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_each_study_file_is_the_protocol_its_study_pinned(name):
    values = study_values(ROOT / "studies" / name)
    values.pop("epochs_from_calibration", None)
    pinned = json.loads((ROOT / PUBLISHED[name]).read_text())
    if "epochs" not in values["train"]:  # Study II: its calibration chose the epochs the folder pinned
        values["train"]["epochs"] = pinned["train"]["epochs"]
    assert StudyConfig(**values).to_dict() == pinned


def test_the_calibration_file_is_study_twos_calibration():
    values = read_protocol(ROOT / "studies" / "study2-calibration.toml", "calibration")
    values["budgets"] = tuple(values["budgets"])
    pinned = json.loads((ROOT / "docs/study2/fmnist/fidelity_config.json").read_text())
    assert FidelityConfig(**values).to_dict() == pinned


def test_old_preset_names_find_their_files_and_bad_files_are_one_line(tmp_path, capsys):
    assert preset_file("fmnist-study3", "study").name == "study3.toml"
    with pytest.raises(ConfigError, match="choose one of"):
        preset_file("paper", "study")
    with pytest.raises(ConfigError, match="not a 'study' one"):
        read_protocol(ROOT / "studies" / "study2-calibration.toml", "study")
    bad = tmp_path / "bad.toml"
    bad.write_text("kind = 'study'\nsearches = [")
    assert main(["study", "--config", str(bad), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not readable TOML" in err
    out = tmp_path / "plan.json"
    assert main(["study", "--config", str(ROOT / "studies" / "study3.toml"), "--out", str(tmp_path / "s3"),
                 "--print-config"]) == 0  # fmt: skip
    plan = json.loads(capsys.readouterr().out)
    assert len(plan["units"]) == 6 * 4 + 60 + 10 and not out.exists()
