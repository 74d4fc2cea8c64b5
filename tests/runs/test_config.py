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
    # not tests.tiny's TINY: without --init-channels, as --max-macs chooses them
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


@pytest.mark.parametrize("n_images, batch", [(600, 8), (20_000, 32)])
def test_folder_search_defaults_pass_their_own_checks(n_images, batch):
    from pcdarts.runs.search import MIN_ARCH_STEPS, MIN_OP_CHANNELS
    from pcdarts.runs.sizing import fit_folder_search

    cfg = SearchConfig.for_dataset("folder")
    fitted, line = fit_folder_search(cfg, n_images, set())
    steps = -(-int(n_images * fitted.train_portion) // fitted.batch_size)
    assert fitted.init_channels // fitted.k >= MIN_OP_CHANNELS and fitted.batch_size == batch
    assert steps * (fitted.epochs - fitted.warmup_epochs) >= MIN_ARCH_STEPS
    assert f"folder search for {n_images:,} images" in line
    kept, _ = fit_folder_search(cfg, n_images, {"init_channels", "batch_size", "epochs"})  # the user's values stay
    assert (kept.init_channels, kept.batch_size, kept.epochs) == (cfg.init_channels, cfg.batch_size, cfg.epochs)
