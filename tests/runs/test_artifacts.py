"""runs.artifacts: a run's cell, a search's arch.json derived again (read bounded), a network's size."""

import pytest

from pcdarts.cli import main
from pcdarts.errors import ConfigError
from tests.conftest import one_line


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
