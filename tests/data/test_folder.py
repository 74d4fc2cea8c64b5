"""data.folder: image folders streamed with the augmentation asked for, and an image a loader worker cannot
decode named in its error."""

import pytest

from pcdarts.cli import main
from tests.conftest import one_line


def test_image_folders_honour_the_augmentation_flags(tmp_path, capsys):
    import numpy as np
    import torch
    from PIL import Image

    from pcdarts.data.augment import Augment
    from pcdarts.data.folder import FolderStream

    data = tmp_path / "images"
    (data / "a").mkdir(parents=True)
    ramp = np.tile(np.arange(16, dtype=np.uint8)[None, :, None] * 16, (16, 1, 3))  # bright to the right
    Image.fromarray(ramp).save(data / "a" / "0.png")
    (data / "b").mkdir()
    for i in range(4):  # enough files for --print-config to read the folder (two classes, a held-out split)
        Image.fromarray(ramp).save(data / "a" / f"{i + 1}.png")
        Image.fromarray(255 - ramp).save(data / "b" / f"{i}.png")
    items = [(str(data / "a" / "0.png"), 0)]

    def batch(**aug):
        s = FolderStream(items, 1, side=16, channels=3, mean=(0, 0, 0), std=(1, 1, 1), train=True, workers=0,
                         jitter=False, augment=Augment(**aug), seed=1)  # fmt: skip
        return torch.cat([s.next_batch()[0] for _ in range(8)])

    plain = batch(crop_padding=0, flip=False, cutout=0)
    assert torch.allclose(plain, plain[:1].expand_as(plain))  # no crop, no flip: the image itself every time
    assert (plain[0, 0, 0, 1:] >= plain[0, 0, 0, :-1]).all()
    flipped = batch(crop_padding=0, flip=True, cutout=0)
    assert any((x[0, 0, 1:] <= x[0, 0, :-1]).all() and x[0, 0, 0] > x[0, 0, -1] for x in flipped)
    cut = batch(crop_padding=0, flip=False, cutout=6)
    assert all((x == 0).all(dim=0).sum() >= 9 for x in cut)  # a zeroed square in every image
    cropped = batch(crop_padding=4, flip=False, cutout=0)
    assert not torch.allclose(cropped, plain)
    args = ["train", "--dataset", "folder", "--data", str(data), "--genotype", "DARTS_V2", "--print-config"]
    assert main([*args, "--crop-padding", "0", "--no-flip"]) == 0
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no random crop (centre), flips off, colour jitter, cutout" in line
    assert main([*args[:-1], "--crop-padding", "3", "--epochs", "1", "--out", str(tmp_path / "t")]) == 2
    assert "random-resized crop" in one_line(capsys)


def test_an_image_error_in_a_loader_worker_names_the_file(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from pcdarts.data import DataError
    from pcdarts.data.folder import FolderStream

    Image.new("L", (300, 300)).save(tmp_path / "big.png")
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the worker inherits it (fork): big.png is a "bomb"
    items = [(str(tmp_path / "big.png"), 0), (str(tmp_path / "small.png"), 0)]
    s = FolderStream(items, 2, side=8, channels=1, mean=(0,), std=(1,), train=True, workers=1)
    with pytest.raises(DataError, match="big.png is too large to decode safely"):
        s.next_batch()
    from pcdarts.data.folder import own_side

    assert own_side(items) == 8  # the bomb is skipped when estimating the size; refused when it is read
