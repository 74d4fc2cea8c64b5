"""data.datasets: the bundled digits, synthetic data of any shape, an unknown name refused."""

import pytest
import torch

from pcdarts.data import DataError, get_dataset


def test_digits_is_bundled_upscaled_and_split_stratified():
    ds = get_dataset("digits")
    assert ds.train_x.shape[1:] == (1, 16, 16) and ds.num_classes == 10
    assert len(ds.train_x) + len(ds.test_x) == 1797
    assert torch.bincount(ds.test_y).min() >= 35  # every class held out in proportion
    again = get_dataset("digits")
    assert torch.equal(ds.test_y, again.test_y)  # fixed split


def test_synthetic_any_shape():
    ds = get_dataset("synthetic", image_size=12, in_channels=2, num_classes=3, train_size=20, test_size=5)
    assert ds.train_x.shape == (20, 2, 12, 12) and ds.test_x.shape == (5, 2, 12, 12)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset"):
        get_dataset("mnist-typo")
