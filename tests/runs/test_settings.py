"""runs.settings: the settings a search or training runs with, from Python as from the command line."""

import json
import shutil

import pytest

from pcdarts.cli import main
from pcdarts.errors import ConfigError
from pcdarts.runs.settings import saved_settings, search_settings, train_settings
from tests.conftest import one_line


def _search_run(tmp_path, **cfg):
    run = tmp_path / "search"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"kind": "search", **cfg}))
    return run


def test_a_training_takes_its_data_from_the_search_it_starts_from(tmp_path):
    run = _search_run(tmp_path, dataset="fashion-mnist", data="/somewhere", image_size=20)
    cfg = train_settings({"genotype": str(run)})
    assert (cfg.dataset, cfg.data, cfg.image_size) == ("fashion-mnist", "/somewhere", 20)
    cfg = train_settings({"genotype": str(run), "image_size": 12})  # what the caller gives wins
    assert (cfg.dataset, cfg.image_size) == ("fashion-mnist", 12)
    cfg = train_settings({"genotype": str(run)}, dataset="digits")  # another dataset: nothing is taken
    assert (cfg.dataset, cfg.data) == ("digits", None)


def test_max_macs_chooses_the_width_so_init_channels_beside_it_is_refused():
    with pytest.raises(ConfigError, match="--max-macs or --init-channels, not both"):
        train_settings({"max_macs": 5e6, "init_channels": 16})
    assert train_settings({"max_macs": 5e6}).max_macs == 5e6


def test_a_resume_takes_the_runs_own_settings_and_refuses_damaged_ones(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    assert saved_settings(out) is None
    (out / "config.json").write_text(json.dumps({"kind": "search", "dataset": "digits", "epochs": 6, "k": 2}))
    cfg = search_settings({}, out=out, resume=True)
    assert (cfg.dataset, cfg.epochs, cfg.k) == ("digits", 6, 2)
    assert search_settings({"epochs": 7}, out=out, resume=True).epochs == 7  # given now: wins
    assert search_settings({}, out=out).epochs != 6  # a new run does not read the folder
    (out / "config.json").write_text(json.dumps({"kind": "search", "dataset": "digits", "epochs": "three"}))
    with pytest.raises(ConfigError, match="wrong type .*epochs"):
        search_settings({}, out=out, resume=True)


def test_a_training_resumes_the_cell_it_resolved_not_its_name(tmp_path):
    out = tmp_path / "train"
    out.mkdir()
    cell = {"normal": [["skip_connect", 0]] * 8, "normal_concat": [2, 3, 4, 5],
            "reduce": [["max_pool_3x3", 0]] * 8, "reduce_concat": [2, 3, 4, 5]}  # fmt: skip
    (out / "config.json").write_text(json.dumps({"kind": "train", "dataset": "digits", "genotype": "somewhere/gone",
                                                 "genotype_resolved": cell}))  # fmt: skip
    assert json.loads(saved_settings(out)["genotype"]) == cell
    assert json.loads(train_settings({}, out=out, resume=True).genotype) == cell


def test_a_config_of_the_wrong_shape_on_resume_is_one_line_or_the_checkpoint_is_used(
    tiny_search, tmp_path, capsys, caplog
):
    search_run = tmp_path / "s"
    shutil.copytree(tiny_search, search_run)  # its config.json is rewritten and the run resumed: a copy
    cfg = search_run / "config.json"
    good = cfg.read_text()
    cfg.write_text(json.dumps({**json.loads(good), "epochs": "3", "layers": None}))
    assert main(["search", "--resume", "--out", str(search_run), "--no-progress"]) == 2
    assert "wrong type (epochs)" in one_line(capsys)
    cfg.write_text("[]")  # unreadable as a config: the checkpoint's copy is used
    assert main(["search", "--resume", "--out", str(search_run), "--no-progress"]) == 0
    assert "is unreadable: resuming with the settings" in caplog.text
