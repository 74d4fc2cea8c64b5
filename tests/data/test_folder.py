"""data.folder: JPEG class folders in the layouts people have (ImageNet's, with subsets), at their own image size,
streamed with the augmentation asked for; folders that cannot train refused, and an image a loader worker cannot
decode named in its error."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pcdarts.cli import main
from pcdarts.data import (
    DataError,
    final_test_part,
    get_dataset,
    make_stream,
    subsample,
    train_part,
)
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


def _jpeg_tree(root: Path, classes=("cat", "dog", "eel"), per_class=6, grey_every=3):
    rng = np.random.default_rng(1)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            w, h = 40 + 7 * i, 30 + 3 * i  # non-square, varied sizes
            arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            im = Image.fromarray(arr)
            if i % grey_every == 0:
                im = im.convert("L")
            im.save(root / c / f"{i}.jpg", quality=85)


def test_folder_dataset_streams_with_workers(tmp_path):
    _jpeg_tree(tmp_path / "imgs")
    ds = get_dataset("folder", data=str(tmp_path / "imgs"), image_size=24)
    assert ds.num_classes == 3 and ds.classes == ["cat", "dog", "eel"]
    assert len(ds.train) + len(ds.test) == 18 and len(ds.test) == 3
    s = make_stream(ds, train_part(ds), 5, train=True, seed=0, workers=2)
    batches = list(s.epoch())
    assert sum(len(y) for _, y in batches) == 15 and batches[0][0].shape == (5, 3, 24, 24)
    t = make_stream(ds, final_test_part(ds), 8, train=False, workers=0)
    x, y = next(iter(t.epoch()))
    assert x.shape == (3, 3, 24, 24)
    again = make_stream(ds, train_part(ds), 5, train=True, seed=0, workers=0)
    assert torch.equal(next(iter(again.epoch()))[0], batches[0][0])  # same pictures whatever the worker count


def test_imagenet_layout_search_subset_and_train(tmp_path, capsys):
    _jpeg_tree(tmp_path / "inet" / "train", per_class=8)
    _jpeg_tree(tmp_path / "inet" / "val", per_class=2)
    lst = tmp_path / "subset.json"
    subsample = ["subsample", "--data", str(tmp_path / "inet"), "--train-fraction", "0.5", "--val-fraction", "0.25"]
    assert main([*subsample, "--seed", "3", "--out", str(lst)]) == 0
    sub = json.loads(lst.read_text())
    assert len(sub["weights"]) == 12 and len(sub["arch"]) == 6
    assert not {p for p, _ in sub["weights"]} & {p for p, _ in sub["arch"]}
    assert main([*subsample, "--seed", "3", "--out", str(tmp_path / "again.json")]) == 0
    assert (tmp_path / "again.json").read_text() == lst.read_text()  # reproducible
    out = tmp_path / "run"
    assert (
        main(
            [
                "search",
                "--dataset",
                "imagenet",
                "--data",
                str(tmp_path / "inet"),
                "--subset",
                str(lst),
                "--image-size",
                "32",
                "--layers",
                "3",
                "--init-channels",
                "4",
                "--k",
                "2",
                "--epochs",
                "2",
                "--warmup-epochs",
                "1",
                "--batch-size",
                "4",
                "--workers",
                "0",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "genotype.json").is_file()


def test_corrupt_empty_and_missing_folders(tmp_path, capsys):
    _jpeg_tree(tmp_path / "imgs", per_class=3)
    (tmp_path / "imgs" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    ds = get_dataset("folder", data=str(tmp_path / "imgs"), image_size=16)
    s = make_stream(ds, ds.train + ds.test, 16, train=False, workers=1)
    with pytest.raises(DataError, match="cannot decode image .*broken.jpg"):
        list(s.epoch())
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        get_dataset("folder", data=str(tmp_path / "empty"))
    with pytest.raises(DataError, match="does not exist"):
        get_dataset("folder", data=str(tmp_path / "nowhere"))
    code = main(["train", "--dataset", "folder", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_subsample_fractions_validated():
    with pytest.raises(DataError):
        subsample([("a", 0)], 0.9, 0.2, 0)


def test_predict_on_a_folder_model_uses_the_evaluation_crop(tmp_path, capsys):
    from pcdarts import load_model
    from pcdarts.data.images import centre_crop, decode

    _jpeg_tree(tmp_path / "imgs", per_class=4)
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                "folder",
                "--data",
                str(tmp_path / "imgs"),
                "--image-size",
                "16",
                "--layers",
                "3",
                "--init-channels",
                "4",
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--workers",
                "0",
                "--genotype",
                "DARTS_V2",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    image = str(tmp_path / "imgs" / "dog" / "1.jpg")  # 47x33: not square, so resize and crop differ
    assert main(["predict", "--checkpoint", str(out / "best.pt"), image, "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])[0]
    model = load_model(out / "best.pt")
    arr = np.asarray(centre_crop(decode(image, 3), 16), dtype=np.float32) / 255.0
    x = torch.from_numpy(arr).permute(2, 0, 1)[None]
    mean, std = torch.tensor(model.meta["mean"]).view(1, -1, 1, 1), torch.tensor(model.meta["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        probs = torch.softmax(model((x - mean) / std), 1)[0]
    assert row["top"][0]["probability"] == pytest.approx(float(probs.max()), abs=1e-5)


@pytest.mark.parametrize("layout", ["flat", "train_only", "train_val"])
def test_folder_layouts_people_have(tmp_path, layout, caplog):
    import logging

    root = tmp_path / "d"
    if layout == "flat":
        _jpeg_tree(root, per_class=5)
    elif layout == "train_only":
        _jpeg_tree(root / "train", per_class=5)
    else:
        _jpeg_tree(root / "train", per_class=5)
        _jpeg_tree(root / "val", per_class=2)
    with caplog.at_level(logging.INFO):
        ds = get_dataset("folder", data=str(root))
    assert ds.classes == ["cat", "dog", "eel"]
    assert {y for _, y in ds.train} == {0, 1, 2} and {y for _, y in ds.test} == {0, 1, 2}
    assert "found 3 classes" in caplog.text


@pytest.mark.parametrize(
    "make,msg",
    [
        (lambda r: _jpeg_tree(r, classes=("only",)), "one class sub-folder"),
        (lambda r: _jpeg_tree(r / "train", classes=("only",)), "one class sub-folder"),
        (lambda r: (_jpeg_tree(r), (r / "empty").mkdir()), "holds no images"),
    ],
)
def test_folders_that_cannot_train_a_classifier_are_refused(tmp_path, make, msg):
    make(tmp_path / "d")
    with pytest.raises(DataError, match=msg):
        get_dataset("folder", data=str(tmp_path / "d"))


def test_subset_lists_must_agree_with_folders_and_be_disjoint(tmp_path):
    import json

    from pcdarts.data.folder import read_subset, split_folder

    _jpeg_tree(tmp_path / "d")
    _, train, _ = split_folder(tmp_path / "d")
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"weights": [[train[0][0], 2]], "arch": [[train[1][0], train[1][1]]]}))
    with pytest.raises(DataError, match="another label"):
        read_subset(str(p), train)
    p.write_text(json.dumps({"weights": [list(train[0])], "arch": [list(train[0])]}))
    with pytest.raises(DataError, match="disjoint"):
        read_subset(str(p), train)


def test_a_folder_is_used_at_its_own_image_size_up_to_a_cap(tmp_path, caplog):
    import logging
    import statistics

    from pcdarts.data.folder import FOLDER_MAX_SIDE
    from pcdarts.runs.config import SearchConfig, TrainConfig

    _jpeg_tree(tmp_path / "small")  # shorter sides 30..45 px: their median, not upscaled to 64
    with caplog.at_level(logging.INFO):
        ds = get_dataset("folder", data=str(tmp_path / "small"))
    median = int(statistics.median(min(Image.open(p).size) for p, _ in ds.train))
    assert 30 <= median <= 45 and ds.image_size == (median, median)
    assert "their own size, at most 64" in caplog.text
    big = tmp_path / "big"
    for c in ("a", "b"):
        (big / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (300, 200 + i)).save(big / c / f"{i}.png")
    assert get_dataset("folder", data=str(big)).image_size == (FOLDER_MAX_SIDE, FOLDER_MAX_SIDE)
    assert get_dataset("folder", data=str(big), image_size=96).image_size == (96, 96)  # asked for: as asked
    for cls in (SearchConfig, TrainConfig):
        assert cls.for_dataset("folder").image_size == 0  # the default leaves the size to the images
