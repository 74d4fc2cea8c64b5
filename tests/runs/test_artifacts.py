"""runs.artifacts: what a finished run gives back, a trained network evaluated on the data its run remembers and
a search's arch.json derived again, read bounded."""

import json

import pytest

import pcdarts
from pcdarts.cli import main
from pcdarts.errors import ConfigError
from tests.conftest import one_line
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


def test_derive_reads_arch_json_with_the_bounded_reader(tmp_path, capsys):
    run = tmp_path / "s"
    run.mkdir()
    (run / "arch.json").write_text("[" * 200_000)
    assert main(["derive", str(run)]) == 2
    assert "not readable JSON" in one_line(capsys)


def test_describe_network_is_the_info_command_in_python():
    from pcdarts.runs.artifacts import describe_network

    out = describe_network("PC_DARTS_cifar", dataset="fashion-mnist")
    assert (out["input"], out["init_channels"], out["layers"], out["trained_run"]) == ([1, 16, 16], 16, 6, False)
    wider = describe_network("PC_DARTS_cifar", dataset="fashion-mnist", init_channels=32)
    assert wider["params"] > out["params"] and wider["macs"] > out["macs"]
    with pytest.raises(ConfigError, match="layers must be between"):
        describe_network("PC_DARTS_cifar", layers=0)
