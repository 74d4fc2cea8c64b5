"""CLI commands end to end: the ``next:`` line a finished search prints runs as printed, and ``info --json``
knows every dataset it names."""

import json
import shlex
import shutil

import pytest

from pcdarts.cli import main


def test_the_printed_next_line_runs_as_printed_with_the_searchs_data(tiny_search, tmp_path, capsys, caplog):
    search = tmp_path / "s"
    shutil.copytree(tiny_search, search)  # resumed, and the training lands beside it: the shared run stays as it was
    assert main(["search", "--resume", "--out", str(search), "--no-progress"]) == 0  # prints the summary again
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("next: "))[len("next: ") :]
    args = shlex.split(line)
    assert args[:2] == ["pcdarts", "train"]
    caplog.set_level("INFO")
    assert main([*args[1:], "--epochs", "1", "--no-progress", "--threads", "1"]) == 0
    cfg = json.loads((search.parent / "s-train" / "config.json").read_text())
    assert cfg["dataset"] == "digits" and cfg["image_size"] == 8  # taken from the search, not the defaults
    assert "data as the search in" in caplog.text


@pytest.mark.parametrize("dataset,shape", [("fashion-mnist", [1, 16, 16]), ("folder", [3, 64, 64])])
def test_info_knows_every_dataset_it_names(dataset, shape, capsys):
    assert main(["info", "--genotype", "DARTS_V2", "--dataset", dataset, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input"] == shape
