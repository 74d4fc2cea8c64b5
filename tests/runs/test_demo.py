"""`pcdarts demo`: stopped in any part it exits 0 with the command that continues, and that command continues."""

import pytest

import pcdarts.runs.demo as demo_mod
from pcdarts.cli import main
from pcdarts.runs.presets import DATASET_DEFAULTS
from tests.tiny import TINY, TINY_TRAIN


@pytest.fixture
def small_digits(monkeypatch):
    """The demo's digits defaults shrunk to seconds (a quarter of the images, a 3-cell, 4-channel network)."""
    for kind in ("search", "train"):
        small = {**DATASET_DEFAULTS[kind]["digits"], "layers": 3, "init_channels": 4, "image_size": 8,
                 "train_images": 360}  # fmt: skip
        monkeypatch.setitem(DATASET_DEFAULTS[kind], "digits", small)


def test_a_stopped_demo_says_how_to_continue_and_continues_each_part(tmp_path, monkeypatch, capsys, small_digits):
    out = tmp_path / "demo"
    real = demo_mod.run_train
    calls = []

    def stopping_train(cfg, folder, **kw):  # the first training is stopped (as Ctrl-C or SIGTERM would)
        calls.append(folder.name)
        if len(calls) == 1:
            return {"stopped": True}
        return real(cfg, folder, **kw)

    monkeypatch.setattr(demo_mod, "run_train", stopping_train)
    args = ["demo", "--out", str(out), "--search-epochs", "2", "--train-epochs", "1", "--no-progress", "--threads", "1"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"continue with: pcdarts demo --resume --out {out} --search-epochs 2 --train-epochs 1 --threads 1" in err
    assert (out / "search" / "search_result.json").is_file() and not (out / "summary.json").exists()
    search_before = (out / "search" / "search_result.json").read_bytes()
    printed_command = err.split("continue with: ")[1].split()
    assert main(printed_command[1:] + ["--no-progress"]) == 0  # as printed: the search read back, trainings run
    printed = capsys.readouterr().out
    assert "searched: test accuracy" in printed and "random: test accuracy" in printed
    assert (out / "search" / "search_result.json").read_bytes() == search_before
    assert calls == ["train", "train", "train_random"]
    assert main([*args, "--resume"]) == 0  # everything finished: read back, nothing trained
    other = ["demo", "--out", str(out), "--search-epochs", "2", "--train-epochs", "2", "--threads", "1"]
    assert main([*other, "--no-progress", "--resume"]) == 2  # its trainings finished with 1 epoch: not reused
    assert calls == ["train", "train", "train_random"]
    assert (out / "summary.json").is_file()


def test_a_demo_folder_without_resume_or_overwrite_is_refused_in_one_line(tmp_path, capsys, small_digits):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--search-epochs", "1", "--train-epochs", "1", "--no-random", "--no-progress",
            "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume" in err


def test_info_preprocess_is_what_predict_does(tmp_path):
    """From Python, the tool's own preprocessing: predict_tensor on info.preprocess equals predict on the file."""
    import numpy as np
    import torch
    from PIL import Image

    import pcdarts

    run = tmp_path / "t"
    args = ["train", *TINY_TRAIN, "--genotype", "DARTS_V2", "--out", str(run)]
    assert main(args) == 0
    img = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 13, 3), dtype=np.uint8)).save(img)
    model, info = pcdarts.load_trained(run)
    x = info.preprocess(img)
    assert x.shape == (3, 8, 8) and torch.equal(x, info.preprocess(Image.open(img)))
    a = pcdarts.predict_tensor(model, info, x[None])[0]["top"]
    b = pcdarts.predict(run, [str(img)])[0]["top"]
    assert [t["class"] for t in a] == [t["class"] for t in b]
    assert max(abs(s["probability"] - t["probability"]) for s, t in zip(a, b)) < 1e-6


def test_derive_gives_the_capped_cell_on_the_command_line(tmp_path, capsys):
    import json

    import pcdarts

    s = tmp_path / "s"
    args = ["search", *TINY, "--epochs", "2", "--out", str(s)]
    assert main(args) == 0
    cell = tmp_path / "cap1.json"
    assert main(["derive", str(s), "--max-param-free", "1", "--max-param-free-reduce", "1", "--out", str(cell)]) == 0
    assert f"next: pcdarts train --genotype {cell}" in capsys.readouterr().out
    want = pcdarts.derive_from_run(s, max_param_free=1, max_param_free_reduce=1)
    assert pcdarts.Genotype.from_dict(json.loads(cell.read_text())) == want
    assert main(["derive", str(s), "--out", str(cell)]) == 2  # an existing file needs --overwrite
    assert main(["derive", str(s), "--max-param-free", "9"]) == 2


def test_max_macs_picks_the_largest_channels_that_fit(tmp_path, caplog):
    import logging

    from pcdarts.nas.genotype import GENOTYPES
    from pcdarts.nas.network import build_network, count_macs
    from pcdarts.runs.config import TrainConfig
    from pcdarts.runs.sizing import fit_to_macs

    cfg = TrainConfig(dataset="synthetic", image_size=16, layers=5, auxiliary=False, max_macs=8_000_000)
    with caplog.at_level(logging.INFO, logger="pcdarts.runs.sizing"):
        fitted = fit_to_macs(cfg, GENOTYPES["DARTS_V2"])
    c = fitted.init_channels

    def macs(ch):
        net = build_network(GENOTYPES["DARTS_V2"], num_classes=10, in_channels=3, init_channels=ch, layers=5,
                            auxiliary=False)  # fmt: skip
        return count_macs(net, (3, 16, 16))

    assert c % 2 == 0 and macs(c) <= 8_000_000 < macs(c + 2)
    assert f"{c} init channels" in caplog.text
    assert main(["train", "--dataset", "synthetic", "--genotype", "DARTS_V2", "--max-macs", "1K", "--out",
                 str(tmp_path / "t")]) == 2  # fmt: skip
    with pytest.raises(SystemExit):  # argparse: usage and one error line
        main(["train", "--dataset", "synthetic", "--max-macs", "lots", "--out", str(tmp_path / "t")])
