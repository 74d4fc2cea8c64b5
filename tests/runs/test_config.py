"""Rules of the library that the CLI only passes on: a caller of the library meets the same one-line errors."""

import pytest

from pcdarts.cli import main
from pcdarts.errors import ConfigError
from pcdarts.runs.config import SearchConfig
from pcdarts.runs.memory import predict_peak
from pcdarts.runs.presets import check_preset
from pcdarts.runs.sizing import auto_batch
from tests.conftest import one_line


def test_the_library_refuses_what_the_cli_refuses(monkeypatch):
    shape = dict(in_channels=3, size=8, num_classes=10)
    with pytest.raises(ConfigError, match="batch size must be between"):
        predict_peak(SearchConfig(init_channels=8, layers=3), batch=0, **shape)
    with pytest.raises(ConfigError, match="in channels must be between"):
        predict_peak(SearchConfig(init_channels=8, layers=3), batch=8, **{**shape, "in_channels": 0})
    with pytest.raises(ConfigError, match="per-class subsets"):
        check_preset("paper", SearchConfig(dataset="imagenet"))
    check_preset("paper", SearchConfig(dataset="imagenet", train_images=1000))  # a subset of its own: allowed
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="under torchrun"):
        auto_batch(SearchConfig(dataset="digits"))


def test_one_table_of_dataset_shapes_serves_plan_and_info():
    from pcdarts.data import SHAPES
    from pcdarts.runs.costs import search_shape
    from pcdarts.runs.presets import described_network

    cfg, shape = described_network("imagenet")  # the paper's evaluation network
    assert (cfg.init_channels, cfg.layers, cfg.stem, shape) == (48, 14, "imagenet", (3, 224, 224))
    cfg, shape = described_network("fashion-mnist")  # what `pcdarts train --dataset fashion-mnist` builds
    assert (cfg.init_channels, cfg.layers, shape) == (16, 6, (1, 16, 16))
    plan = search_shape(SearchConfig(dataset="fashion-mnist", image_size=0, holdout_images=0))
    assert plan == (1, SHAPES["fashion-mnist"].side, 10, 60_000)
    with pytest.raises(ConfigError, match="count it"):
        search_shape(SearchConfig(dataset="folder"))
    with pytest.raises(ConfigError, match="unknown dataset"):
        described_network("cifar11")


def test_max_macs_refuses_a_budget_beyond_any_network_it_would_build(tmp_path, capsys):
    args = ["train", "--dataset", "synthetic", "--genotype", "DARTS_V2", "--image-size", "8", "--layers", "3",
            "--out", str(tmp_path / "t")]  # fmt: skip
    assert main([*args, "--max-macs", "1000G"]) == 2
    assert "more than 512 init channels" in one_line(capsys)
    assert main([*args, "--max-macs", "5M", "--init-channels", "8"]) == 2
    assert "not both" in one_line(capsys)


def test_describe_network_is_the_info_command_in_python():
    from pcdarts.runs.artifacts import describe_network

    out = describe_network("PC_DARTS_cifar", dataset="fashion-mnist")
    assert (out["input"], out["init_channels"], out["layers"], out["trained_run"]) == ([1, 16, 16], 16, 6, False)
    wider = describe_network("PC_DARTS_cifar", dataset="fashion-mnist", init_channels=32)
    assert wider["params"] > out["params"] and wider["macs"] > out["macs"]
    with pytest.raises(ConfigError, match="layers must be between"):
        describe_network("PC_DARTS_cifar", layers=0)
