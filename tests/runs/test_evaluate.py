"""runs.evaluate: a trained network scored on the held-out split of the data its run remembers."""

import json

import pcdarts
from pcdarts.cli import main
from tests.tiny import TINY_TRAIN


def test_eval_of_a_run_takes_its_data_from_the_run(tmp_path, monkeypatch, capsys):
    from tests.idx_data import write_idx

    data = write_idx(tmp_path / "idx")
    out = tmp_path / "t"
    args = ["train", *TINY_TRAIN, "--dataset", "fashion-mnist", "--data", str(data), "--out", str(out),
            "--train-images", "0", "--genotype", "DARTS_V2"]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--json"]) == 0  # no --data: the run remembers it
    printed = json.loads(capsys.readouterr().out)
    assert printed["images"] == 40
    assert pcdarts.evaluate_trained(out) == {**printed, "classes": 10}  # the command prints the library's figures
