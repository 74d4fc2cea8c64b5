"""deploy: a trained run loaded for inference, exported (TorchScript, torch.export, ONNX) and used to predict."""

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pcdarts import load_model
from pcdarts.cli import main
from pcdarts.data import get_dataset
from pcdarts.deploy import load_trained
from pcdarts.errors import RunError
from pcdarts.files import save_checkpoint
from tests.conftest import one_line
from tests.tiny import TINY_SEARCH, train_state


def _batch(model):
    torch.manual_seed(1)
    return torch.randn(4, 1, *model.meta["input_size"])


def test_load_model_rebuilds_for_inference(digits_runs):
    model = load_model(digits_runs / "train")
    assert not model.training and model.auxiliary_head is None
    assert model(_batch(model)).shape == (4, 10)


@pytest.mark.parametrize("fmt", ["torchscript", "exported"])
def test_torch_exports_match_eager_logits(digits_runs, tmp_path, fmt, capsys, recwarn):
    ckpt = digits_runs / "train" / "best.pt"
    out = tmp_path / f"model.{fmt}"
    assert main(["export", "--checkpoint", str(ckpt), "--format", fmt, "--out", str(out), "--json"]) == 0
    assert not [w for w in recwarn if issubclass(w.category, torch.jit.TracerWarning)]  # no branch on a traced size
    report = json.loads(capsys.readouterr().out)
    assert report["max_abs_diff"] <= 1e-4
    model = load_model(ckpt)
    x = _batch(model)
    loaded = torch.jit.load(str(out)) if fmt == "torchscript" else torch.export.load(str(out)).module()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-4, rtol=0)
    meta = json.loads((tmp_path / f"model.{fmt}.json").read_text())
    assert meta["classes"] == [str(i) for i in range(10)] and meta["input_size"] == [8, 8]


def test_onnx_export_matches_eager_logits(digits_runs, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    ckpt = digits_runs / "train" / "best.pt"
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(out)]) == 0
    model = load_model(ckpt)
    x = _batch(model)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})[0]  # a batch of 4 through a dynamic batch axis
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), atol=1e-4, rtol=0)
    props = {p.key: json.loads(p.value) for p in onnx.load(str(out)).metadata_props}
    assert props["genotype"]["normal_concat"] == [2, 3, 4, 5] and "mean" in props


def test_predict_on_image_files(digits_runs, tmp_path, capsys):
    ds = get_dataset("digits", image_size=8)
    paths = []
    for i in range(3):
        p = tmp_path / f"d{i}.png"
        Image.fromarray((ds.test_x[i, 0].numpy() * 255).round().astype(np.uint8), mode="L").save(p)
        paths.append(str(p))
    ckpt = str(digits_runs / "train" / "best.pt")
    assert main(["predict", "--checkpoint", ckpt, *paths, "--top-k", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    model = load_model(ckpt)
    mean, std = torch.tensor(model.meta["mean"]).view(1, -1, 1, 1), torch.tensor(model.meta["std"]).view(1, -1, 1, 1)
    x = torch.tensor(np.stack([np.asarray(Image.open(p), dtype=np.float32) / 255 for p in paths]))[:, None]
    with torch.no_grad():
        expect = torch.softmax(model((x - mean) / std), 1)
    for row, probs in zip(rows, expect):
        assert len(row["top"]) == 2
        assert row["top"][0]["class"] == str(int(probs.argmax()))
        assert row["top"][0]["probability"] == pytest.approx(float(probs.max()), abs=1e-5)


def test_search_checkpoint_where_a_trained_network_is_expected(digits_runs, tmp_path, capsys):
    code = main(
        [
            "export",
            "--checkpoint",
            str(digits_runs / "search" / "checkpoint.pt"),
            "--format",
            "onnx",
            "--out",
            str(tmp_path / "m.onnx"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "trained network" in err and len(err.strip().splitlines()) == 1


def test_predict_bad_image_is_one_line(digits_runs, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    code = main(["predict", "--checkpoint", str(digits_runs / "train" / "best.pt"), str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot decode" in err and len(err.strip().splitlines()) == 1


def test_predict_reports_a_bad_file_and_goes_on(digits_runs, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    sample = str(Path(__file__).resolve().parents[1] / "docs" / "sample_digit.png")
    code = main(["predict", "--checkpoint", str(digits_runs / "train"), str(bad), sample])
    out, err = capsys.readouterr()
    assert code == 2 and "broken.png" in err and "1 of 2 images could not be read" in err
    assert out.startswith(sample + ": ")


def test_export_is_quiet_and_refuses_a_folder_as_out(digits_runs, tmp_path, capsys, recwarn):
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(digits_runs / "train"), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip()
    lines = printed.splitlines()  # what it wrote, then how to load it
    assert printed.startswith(f"wrote {out} (onnx)") and len(lines) == 2 and lines[1].startswith("next: ")
    assert not [w for w in recwarn if "pcdarts" in str(w.filename)]  # nothing from our own code
    assert main(["export", "--checkpoint", str(digits_runs / "train"), "--format", "onnx", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def _consume(meta: dict, path: Path) -> np.ndarray:
    """An outside consumer: follows the export's preprocessing steps with Pillow and numpy, nothing of pcdarts."""
    x = None
    with Image.open(path) as im:
        for step in meta["preprocessing"]["steps"]:
            op = step["op"]
            if op == "decode":
                im = im.convert(step["convert"])
            elif op == "resize_shorter_side":
                w, h = im.size
                side = meta["input_size"][0]
                scale = step["size"] / min(w, h)
                im = im.resize((max(side, round(w * scale)), max(side, round(h * scale))), Image.BILINEAR)
            elif op == "centre_crop":
                w, h = im.size
                s = step["size"][0]
                left, top = (w - s) // 2, (h - s) // 2
                im = im.crop((left, top, left + s, top + s))
            elif op == "resize":
                if im.size != (step["size"][1], step["size"][0]):
                    im = im.resize((step["size"][1], step["size"][0]), Image.BILINEAR)
            elif op == "to_float":
                x = np.asarray(im, dtype=np.float32) * np.float32(step["scale"])
            elif op == "layout":
                x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
            elif op == "normalize":
                m = np.array(step["mean"], dtype=np.float32)[:, None, None]
                s = np.array(step["std"], dtype=np.float32)[:, None, None]
                x = (x - m) / s
    return x[None].astype(np.float32)


@pytest.mark.parametrize("dataset", ["folder", "digits"])
def test_an_export_fed_by_its_metadata_alone_answers_as_predict_does(dataset, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    from pcdarts.files import save_checkpoint

    cin, side = (3, 32) if dataset == "folder" else (1, 16)
    torch.manual_seed(0)
    state = train_state(in_channels=cin, classes=["circle", "square", "triangle"], mean=[0.4] * cin,
                        std=[0.3] * cin, input_size=[side, side], dataset=dataset)  # fmt: skip
    for name, t in state["model"].items():  # random BN statistics, so normalisation matters
        if name.endswith(".running_mean"):
            t.uniform_(-0.2, 0.2)
        elif name.endswith(".running_var"):
            t.uniform_(0.5, 1.5)
    save_checkpoint(tmp_path / "best.pt", state)
    img = tmp_path / "odd.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, size=(45, 61, 3), dtype=np.uint8)).save(img)  # not the input size
    assert main(["export", "--checkpoint", str(tmp_path / "best.pt"), "--format", "onnx",
                 "--out", str(tmp_path / "m.onnx")]) == 0  # fmt: skip
    meta = json.loads((tmp_path / "m.onnx.json").read_text())
    assert meta["preprocessing"]["steps"][0]["op"] == "decode"
    logits = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"input": _consume(meta, img)})[0]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(tmp_path / "best.pt"), "--top-k", "3", "--json", str(img)]) == 0
    tool = {t["class"]: t["probability"] for t in json.loads(capsys.readouterr().out)[0]["top"]}
    for i, name in enumerate(meta["classes"]):
        assert abs(probs[0, i] - tool[name]) < 1e-5


def test_checkpoints_that_load_but_do_not_fit_are_one_line(tmp_path, capsys):
    state = train_state()
    del state["model_args"]
    save_checkpoint(tmp_path / "a.pt", state)
    with pytest.raises(RunError, match="lacks model_args"):
        load_trained(tmp_path / "a.pt")
    save_checkpoint(tmp_path / "b.pt", train_state(genotype="DARTS_V1", weights_of="PC_DARTS_cifar"))
    with pytest.raises(RunError, match="do not fit its genotype"):
        load_trained(tmp_path / "b.pt")
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "checkpoint.pt", {"kind": "search"})
    assert main(["search", *TINY_SEARCH, "--out", str(run), "--resume"]) == 2
    assert "lacks config" in one_line(capsys)


def test_the_lazy_api_is_listed_and_predicts_on_tensors(tmp_path):
    import pcdarts

    names = dir(pcdarts)
    for name in ("SearchConfig", "run_search", "load_trained", "build_network", "predict", "predict_tensor"):
        assert name in names
    save_checkpoint(tmp_path / "best.pt", train_state())
    model, info = pcdarts.load_trained(tmp_path / "best.pt")
    rows = pcdarts.predict_tensor(model, info, torch.rand(2, 1, 8, 8), top_k=2)
    assert len(rows) == 2 and len(rows[0]["top"]) == 2 and abs(sum(t["probability"] for t in rows[0]["top"])) <= 1
    with pytest.raises(ValueError, match="images must be"):
        pcdarts.predict_tensor(model, info, torch.rand(2, 3, 8, 8))
    for bad in (0, -1):  # the library refuses what the command line refuses, in the same words
        with pytest.raises(ValueError, match="top-k must be >= 1"):
            pcdarts.predict_tensor(model, info, torch.rand(2, 1, 8, 8), top_k=bad)
        with pytest.raises(ValueError, match="top-k must be >= 1"):
            pcdarts.predict(tmp_path / "best.pt", [], top_k=bad)
    from pcdarts.nas.derive import derive_from_arch

    arch = {"alphas_normal": [[0.0] * 8] * 14, "alphas_reduce": [[0.0] * 8] * 14}
    with pytest.raises(ValueError, match="max_param_free must be"):  # a setting, not a damaged arch file
        derive_from_arch(arch, max_param_free=9)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_an_export_on_a_full_disk_leaves_the_earlier_export_whole(tiny_train, tmp_path, capsys, monkeypatch, fmt):
    pytest.importorskip("onnx") if fmt == "onnx" else None
    out = tmp_path / f"model.{fmt}"
    assert main(["export", "--checkpoint", str(tiny_train), "--format", fmt, "--out", str(out), "--no-check"]) == 0
    capsys.readouterr()
    earlier, earlier_meta = out.read_bytes(), (tmp_path / f"model.{fmt}.json").read_bytes()
    import pcdarts.files

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pcdarts.files.os, "fsync", full)
    args = ["export", "--checkpoint", str(tiny_train), "--format", fmt, "--out", str(out), "--overwrite", "--no-check"]
    assert main(args) == 2
    assert "no space left to write" in one_line(capsys)
    assert out.read_bytes() == earlier and (tmp_path / f"model.{fmt}.json").read_bytes() == earlier_meta
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, out.name + ".json"])  # no partial file


def test_predict_goes_on_past_a_fifo_and_a_folder_refuses_one(tiny_train, tmp_path, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(good)
    os.mkfifo(tmp_path / "pipe.png")
    assert main(["predict", "--checkpoint", str(tiny_train), str(tmp_path / "pipe.png"), str(good)]) != 0
    captured = capsys.readouterr()
    assert "pipe.png is not a regular file" in captured.err and captured.out.startswith(f"{good}: ")
    data = tmp_path / "imgs"
    for c in ("a", "b"):
        (data / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(data / c / f"{i}.png")
    os.mkfifo(data / "a" / "3.png")
    args = ["train", "--dataset", "folder", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "t")]
    assert main(args) == 2
    assert "3.png is not a regular file" in one_line(capsys)
