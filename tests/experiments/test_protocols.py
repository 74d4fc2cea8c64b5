"""Study protocols are files beside the library (studies/*.toml): each one is the protocol its published study ran."""

import json
from pathlib import Path

import pytest

from pcdarts.cli import main
from pcdarts.errors import ConfigError
from pcdarts.experiments.protocols import preset_file, read_protocol

ROOT = Path(__file__).resolve().parents[2]  # the study files in studies/ (not the published studies)


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
