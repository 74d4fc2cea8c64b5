"""runs.costs: one table of dataset shapes (data.SHAPES) serves plan and info."""

import pytest

from pcdarts.errors import ConfigError
from pcdarts.runs.config import SearchConfig


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
