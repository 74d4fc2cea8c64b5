"""Real formats, made small: a CIFAR-style archive, JPEG class folders, downloads from a local server."""

import hashlib
import http.server
import io
import json
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pcdarts.cli import main
from pcdarts.data import DataError, get_dataset, holdout_part, make_stream, subsample, train_part
from pcdarts.data.cifar import download


def _cifar_archive(path: Path, n_train=6, n_test=4, classes=10) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (n_train * 5 + n_test, 3072), dtype=np.uint8)
    labels = [int(i % classes) for i in range(len(data))]
    with tarfile.open(path, "w:gz") as tar:

        def add(name, obj):
            raw = pickle.dumps(obj)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))

        for b in range(5):
            sl = slice(b * n_train, (b + 1) * n_train)
            add(f"data_batch_{b + 1}", {b"data": data[sl], b"labels": labels[sl]})
        add("test_batch", {b"data": data[-n_test:], b"labels": labels[-n_test:]})
        add("batches.meta", {b"label_names": [f"c{i}".encode() for i in range(classes)]})
    return data, labels


def test_cifar_archive_loads_to_the_right_shapes_and_labels(tmp_path):
    data, labels = _cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    for source in (tmp_path / "cifar-10-python.tar.gz", tmp_path):
        ds = get_dataset("cifar10", data=str(source))
        assert ds.train_x.shape == (30, 3, 32, 32) and ds.train_x.dtype == torch.uint8
        assert ds.test_x.shape == (4, 3, 32, 32)
        assert ds.train_y.tolist() == labels[:30] and ds.test_y.tolist() == labels[30:]
        assert torch.equal(ds.train_x[0], torch.from_numpy(data[0].reshape(3, 32, 32)))
        assert ds.classes[:2] == ["c0", "c1"]
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    assert get_dataset("cifar10", data=str(tmp_path / "x")).train_x.shape[0] == 30
    s = make_stream(ds, train_part(ds), 8, train=True, seed=0)
    x, y = s.next_batch()
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32


def test_hostile_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / n).write_bytes(pickle.dumps(Evil()))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        get_dataset("cifar10", data=str(tmp_path))


class _Server:
    def __init__(self, root: Path):
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)  # noqa: E731
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    _cifar_archive(root / "cifar-10-python.tar.gz")
    raw = (root / "cifar-10-python.tar.gz").read_bytes()
    (root / "truncated.tar.gz").write_bytes(raw[: len(raw) // 2])
    s = _Server(root)
    yield s, hashlib.md5(raw).hexdigest()
    s.close()


def test_download_good_truncated_and_wrong_checksum(server, tmp_path):
    srv, md5 = server
    got = download(f"{srv.url}/cifar-10-python.tar.gz", tmp_path / "a" / "c.tar.gz", md5)
    assert got.is_file() and get_dataset("cifar10", data=str(got)).train_x.shape[0] == 30
    with pytest.raises(DataError, match="checksum mismatch"):
        download(f"{srv.url}/truncated.tar.gz", tmp_path / "b" / "c.tar.gz", md5)
    assert not any((tmp_path / "b").iterdir())  # the partial file was never kept
    with pytest.raises(DataError, match="checksum mismatch"):
        download(f"{srv.url}/cifar-10-python.tar.gz", tmp_path / "c" / "c.tar.gz", "0" * 32)
    assert not (tmp_path / "c" / "c.tar.gz").exists()
    with pytest.raises(DataError, match="download of"):
        download(f"{srv.url}/missing.tar.gz", tmp_path / "d" / "c.tar.gz", md5)


def test_checksum_failure_from_the_cli_is_one_line_exit_2(server, tmp_path, capsys, monkeypatch):
    srv, _ = server
    from pcdarts.data import cifar

    monkeypatch.setitem(cifar.CIFAR["cifar10"], "url", f"{srv.url}/truncated.tar.gz")
    code = main(
        [
            "search",
            "--dataset",
            "cifar10",
            "--download",
            "--data",
            str(tmp_path / "dl"),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--warmup-epochs",
            "0",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "checksum mismatch" in err and len(err.splitlines()) == 1
    assert not list((tmp_path / "dl").glob("*.tar.gz"))


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
    t = make_stream(ds, holdout_part(ds), 8, train=False, workers=0)
    x, y = next(iter(t.epoch()))
    assert x.shape == (3, 3, 24, 24)
    again = make_stream(ds, train_part(ds), 5, train=True, seed=0, workers=0)
    assert torch.equal(next(iter(again.epoch()))[0], batches[0][0])  # same pictures whatever the worker count


def test_imagenet_layout_search_subset_and_train(tmp_path, capsys):
    _jpeg_tree(tmp_path / "inet" / "train", per_class=8)
    _jpeg_tree(tmp_path / "inet" / "val", per_class=2)
    lst = tmp_path / "subset.json"
    assert (
        main(
            [
                "subsample",
                "--data",
                str(tmp_path / "inet"),
                "--train-fraction",
                "0.5",
                "--val-fraction",
                "0.25",
                "--seed",
                "3",
                "--out",
                str(lst),
            ]
        )
        == 0
    )
    sub = json.loads(lst.read_text())
    assert len(sub["weights"]) == 12 and len(sub["arch"]) == 6
    assert not {p for p, _ in sub["weights"]} & {p for p, _ in sub["arch"]}
    assert (
        main(
            [
                "subsample",
                "--data",
                str(tmp_path / "inet"),
                "--train-fraction",
                "0.5",
                "--val-fraction",
                "0.25",
                "--seed",
                "3",
                "--out",
                str(tmp_path / "again.json"),
            ]
        )
        == 0
    )
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
