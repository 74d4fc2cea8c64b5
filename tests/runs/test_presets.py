"""runs.presets: the paper's presets as the official code has them, what they refuse, the networks they describe."""

import pytest

from pcdarts.cli import main
from pcdarts.errors import ConfigError
from pcdarts.runs.config import SearchConfig
from pcdarts.runs.presets import check_preset, preset_values


def test_paper_presets_follow_the_official_code():
    inet = preset_values("paper", "search", "imagenet")
    assert inet["arch_grad_clip"] == 5.0 and inet["lr_warmup_epochs"] == 5 and inet["lr_lag"]
    assert preset_values("paper", "search", "cifar10")["lr_lag"]
    assert preset_values("paper", "train", "cifar10")["val_fraction"] == 0.0  # ships the last epoch, as the paper


def test_imagenet_paper_search_without_a_subset_is_refused(capsys):
    assert main(["search", "--preset", "paper", "--dataset", "imagenet", "--data", "/nowhere", "--out", "/tmp/x"]) == 2
    assert "pcdarts subsample" in capsys.readouterr().err


def test_the_paper_preset_refuses_what_the_cli_refuses():
    with pytest.raises(ConfigError, match="per-class subsets"):
        check_preset("paper", SearchConfig(dataset="imagenet"))
    check_preset("paper", SearchConfig(dataset="imagenet", train_images=1000))  # a subset of its own: allowed
