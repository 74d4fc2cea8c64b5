"""Decoding one image file: other bit depths scaled, decompression bombs and FIFOs refused in one line."""

import os

import numpy as np
import pytest
from PIL import Image

from pcdarts.data import DataError
from pcdarts.data.images import open_image


def test_16_bit_grey_images_are_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 255, 64 * 64).reshape(64, 64).round().astype(np.uint8)
    Image.fromarray(ramp, mode="L").save(tmp_path / "eight.png")
    Image.fromarray(ramp.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")  # the same picture, 16 bits
    assert Image.open(tmp_path / "sixteen.png").mode.startswith("I")
    eight = np.asarray(open_image(tmp_path / "eight.png", 1))
    sixteen = np.asarray(open_image(tmp_path / "sixteen.png", 1))
    assert np.abs(eight.astype(int) - sixteen.astype(int)).max() <= 1
    assert np.asarray(open_image(tmp_path / "sixteen.png", 3)).shape == (64, 64, 3)


def test_a_decompression_bomb_and_a_fifo_are_one_line_errors_naming_the_file(tmp_path, monkeypatch):
    Image.new("L", (300, 300)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 90,000 pixels: over twice the limit, as a bomb is
    with pytest.raises(DataError, match="big.png is too large to decode safely"):
        open_image(tmp_path / "big.png", 1)
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(DataError, match="pipe.png is not a regular file"):
        open_image(tmp_path / "pipe.png", 1)  # would block forever on open
