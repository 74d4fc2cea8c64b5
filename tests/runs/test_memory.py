"""runs.memory: the peak-memory model refuses what the CLI refuses (a caller of the library meets the same errors)."""

import pytest

from pcdarts.errors import ConfigError
from pcdarts.runs.config import SearchConfig
from pcdarts.runs.memory import predict_peak


def test_the_memory_model_refuses_what_the_cli_refuses():
    shape = dict(in_channels=3, size=8, num_classes=10)
    with pytest.raises(ConfigError, match="batch size must be between"):
        predict_peak(SearchConfig(init_channels=8, layers=3), batch=0, **shape)
    with pytest.raises(ConfigError, match="in channels must be between"):
        predict_peak(SearchConfig(init_channels=8, layers=3), batch=8, **{**shape, "in_channels": 0})
