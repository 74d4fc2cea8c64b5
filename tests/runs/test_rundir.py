"""Run folders a user was handed: links inside them, files that only look like a run's, outputs that would
overwrite, exports that must be whole or absent, study and calibration folders of the user's own."""

import errno
import json
import os
from pathlib import Path

import pytest

from pcdarts.cli import main
from pcdarts.errors import RunError
from pcdarts.files import append_line, is_run_folder
from pcdarts.runs.metrics import MetricsLog
from pcdarts.runs.rundir import RunDir, check_out_path
from tests.conftest import one_line
from tests.tiny import TINY_SEARCH
from tests.tiny import TINY_TRAIN as TINY


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished training run (synthetic data, seconds)."""
    run = tmp_path_factory.mktemp("t") / "t1"
    assert main(["train", "--genotype", "DARTS_V2", *TINY, "--out", str(run)]) == 0
    return run


@pytest.mark.parametrize("where", ["new folder", "finished run"])
def test_a_lock_that_is_a_link_is_refused_and_its_target_untouched(tmp_path, capsys, trained, where):
    precious = tmp_path / "precious.txt"
    precious.write_text("my thesis")
    if where == "new folder":
        out = tmp_path / "fresh"
        out.mkdir()
    else:
        out = tmp_path / "copy"
        os.system(f"cp -r {trained} {out}")
    (out / ".lock").symlink_to(precious)
    args = ["train", "--genotype", "DARTS_V2", *TINY, "--out", str(out)]
    assert main(args + (["--overwrite"] if where == "finished run" else [])) == 2
    assert "is a link: pcdarts never writes through one" in one_line(capsys)
    assert precious.read_text() == "my thesis"


def test_a_lock_that_is_a_fifo_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    os.mkfifo(out / ".lock")
    assert main(["search", *TINY, "--out", str(out)]) == 2
    assert "not a regular file" in one_line(capsys)


def test_files_named_like_a_runs_do_not_make_a_run_and_overwrite_cannot_delete_them(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    mine = {"config.json": '{"learning": "notes"}', "metrics.jsonl": "{}\n", "report.html": "<p>mine</p>"}
    for name, text in mine.items():
        (out / name).write_text(text)
    assert not is_run_folder(out)
    for extra in ([], ["--overwrite"], ["--resume"]):
        assert main(["search", *TINY, "--out", str(out), *extra]) == 2
        err = one_line(capsys)
        assert "holds no pcdarts run" in err or "nothing to resume" in err
    assert {p.name: p.read_text() for p in out.iterdir()} == mine


def test_a_real_run_is_recognised_by_its_own_marker(trained):
    assert is_run_folder(trained)
    env = json.loads((trained / "environment.json").read_text())
    assert isinstance(env["pcdarts"], str) and "torch" in env


def test_export_and_report_never_overwrite_a_runs_files_and_ask_before_any_other(trained, tmp_path, capsys):
    before = {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()}
    for name in ("best.pt", "result.json", "metrics.jsonl", "config.json"):
        assert main(["export", "--checkpoint", str(trained), "--format", "torchscript", "--overwrite",
                     "--out", str(trained / name)]) == 2  # fmt: skip
        assert "one of its run's own files" in one_line(capsys)
        assert main(["report", str(trained), "--overwrite", "--out", str(trained / name)]) == 2
        assert "one of its run's own files" in one_line(capsys)
    assert {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()} == before
    mine = tmp_path / "model.pt"
    mine.write_text("the user's file")
    assert main(["export", "--checkpoint", str(trained), "--format", "torchscript", "--out", str(mine)]) == 2
    assert "exists: pass --overwrite" in one_line(capsys)
    side = tmp_path / "other.pt"
    (tmp_path / "other.pt.json").write_text("the user's notes")  # the metadata file the user never named
    assert main(["export", "--checkpoint", str(trained), "--format", "torchscript", "--out", str(side)]) == 2
    assert "other.pt.json exists" in one_line(capsys)
    assert mine.read_text() == "the user's file" and (tmp_path / "other.pt.json").read_text() == "the user's notes"
    assert not side.exists()
    assert (
        main(["export", "--checkpoint", str(trained), "--format", "torchscript", "--out", str(mine), "--overwrite"])
        == 0
    )
    page = tmp_path / "page.html"
    page.write_text("mine")
    assert main(["report", str(trained), "--out", str(page)]) == 2
    assert "exists" in one_line(capsys) and page.read_text() == "mine"
    assert main(["report", str(trained)]) == 0  # the run's own report.html is the default and is renewed


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_an_export_on_a_full_disk_leaves_the_earlier_export_whole(trained, tmp_path, capsys, monkeypatch, fmt):
    pytest.importorskip("onnx") if fmt == "onnx" else None
    out = tmp_path / f"model.{fmt}"
    assert main(["export", "--checkpoint", str(trained), "--format", fmt, "--out", str(out), "--no-check"]) == 0
    capsys.readouterr()
    earlier, earlier_meta = out.read_bytes(), (tmp_path / f"model.{fmt}.json").read_bytes()
    import pcdarts.files

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pcdarts.files.os, "fsync", full)
    args = ["export", "--checkpoint", str(trained), "--format", fmt, "--out", str(out), "--overwrite", "--no-check"]
    assert main(args) == 2
    assert "no space left to write" in one_line(capsys)
    assert out.read_bytes() == earlier and (tmp_path / f"model.{fmt}.json").read_bytes() == earlier_meta
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, out.name + ".json"])  # no partial file


@pytest.mark.parametrize("command", ["study", "fidelity"])
def test_study_and_fidelity_refuse_a_folder_of_the_users_own(tmp_path, capsys, command):
    out = tmp_path / "results"
    out.mkdir()
    (out / "study.png").write_text("my picture")
    (out / "fidelity.png").write_text("my other picture")
    args = [command, "--dataset", "synthetic", "--out", str(out), "--threads", "1", "--no-progress"]
    calibration = ["--cells", "3", "--seed-cells", "1", "--budgets", "1,2"]
    args += ["--random", "2", "--searches", "0"] if command == "study" else calibration
    assert main(args) == 2
    assert "not empty and holds no pcdarts" in one_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["fidelity.png", "study.png"]
    assert (out / "study.png").read_text() == "my picture"


def test_logs_are_never_written_through_a_link(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "metrics.jsonl"  # a dangling link's target: must not be created
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").symlink_to(elsewhere)
    with pytest.raises(RunError, match="is a link"):
        append_line(run / "metrics.jsonl", "{}")
    log = MetricsLog(run / "metrics.jsonl", resume_epoch=3, tensorboard=False)  # a resume keeps the log it finds
    with pytest.raises(RunError, match="is a link"):
        log.write({"epoch": 4})
    assert not elsewhere.exists() and not elsewhere.parent.exists()
    fresh = MetricsLog(run / "metrics.jsonl", tensorboard=False)  # a new run replaces the link by its own file
    fresh.write({"epoch": 1})
    assert not (run / "metrics.jsonl").is_symlink() and not elsewhere.exists()


def test_a_resume_on_changed_image_folders_is_refused_with_what_changed(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    data = tmp_path / "images"
    rng = np.random.default_rng(0)

    def add(cls: str, n: int, start: int = 0) -> None:
        (data / cls).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + n):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(data / cls / f"{i}.png")

    add("cat", 8)
    add("dog", 8)
    out = tmp_path / "run"
    args = ["train", *TINY, "--genotype", "DARTS_V2", "--dataset", "folder", "--data", str(data), "--batch-size", "4",
            "--workers", "0", "--out", str(out)]  # fmt: skip
    assert main([*args, "--epochs", "1"]) == 0
    capsys.readouterr()
    add("dog", 10, start=8)
    assert main([*args, "--epochs", "2", "--resume", "--extend"]) == 2
    err = one_line(capsys)
    assert "the data changed since" in err and "images" in err


def test_the_same_counts_of_other_files_are_other_data(tmp_path):
    from pcdarts.data import FolderDataset
    from pcdarts.runs.inputs import check_data, data_fingerprint

    a = FolderDataset("folder", [("x/1.png", 0), ("y/1.png", 1)], [("x/2.png", 0)], ["x", "y"])
    b = FolderDataset("folder", [("x/1.png", 0), ("y/9.png", 1)], [("x/2.png", 0)], ["x", "y"])
    assert data_fingerprint(a)["train"] == data_fingerprint(b)["train"]
    check_data(a, {"data": data_fingerprint(a)}, "run")
    with pytest.raises(RunError, match="other files"):
        check_data(b, {"data": data_fingerprint(a)}, "run")
    check_data(b, {}, "run")  # a checkpoint from before the record: taken as it is


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


@pytest.mark.parametrize("n_images, batch", [(600, 8), (20_000, 32)])
def test_folder_search_defaults_pass_their_own_checks(n_images, batch):
    from pcdarts.runs.config import SearchConfig
    from pcdarts.runs.search import MIN_ARCH_STEPS, MIN_OP_CHANNELS
    from pcdarts.runs.sizing import fit_folder_search

    cfg = SearchConfig.for_dataset("folder")
    fitted, line = fit_folder_search(cfg, n_images, set())
    steps = -(-int(n_images * fitted.train_portion) // fitted.batch_size)
    assert fitted.init_channels // fitted.k >= MIN_OP_CHANNELS and fitted.batch_size == batch
    assert steps * (fitted.epochs - fitted.warmup_epochs) >= MIN_ARCH_STEPS
    assert f"folder search for {n_images:,} images" in line
    kept, _ = fit_folder_search(cfg, n_images, {"init_channels", "batch_size", "epochs"})  # the user's values stay
    assert (kept.init_channels, kept.batch_size, kept.epochs) == (cfg.init_channels, cfg.batch_size, cfg.epochs)


def test_a_search_reports_its_learnability_warnings(tmp_path):
    from pcdarts.viz.report import build_report

    s = tmp_path / "s"
    assert main(["search", *TINY, "--epochs", "2", "--out", str(s)]) == 0
    said = json.loads((s / "search_result.json").read_text())["warnings"]
    assert any("arch steps" in w for w in said)
    page = build_report(s).read_text()
    assert "barely moves in fewer than" in page


def test_plot_and_subsample_ask_before_overwriting_and_protect_results(tmp_path, capsys):
    mine = tmp_path / "cell.png"
    mine.write_text("my picture")
    assert main(["plot", "--genotype", "DARTS_V2", "--out", str(mine)]) == 2
    assert "exists: pass --overwrite" in one_line(capsys) and mine.read_text() == "my picture"
    assert main(["plot", "--genotype", "DARTS_V2", "--out", str(mine), "--overwrite"]) == 0
    capsys.readouterr()
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text("{}")
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "b").mkdir()
    assert main(["subsample", "--data", str(tmp_path / "imgs"), "--out", str(study / "study.json"),
                 "--overwrite"]) == 2  # fmt: skip
    assert "one of its run's own files" in one_line(capsys) and (study / "study.json").read_text() == "{}"


def test_a_tensorboard_folder_that_is_a_link_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (run / "tb").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RunError, match="tb is a link or not a folder"):
        MetricsLog(run / "metrics.jsonl", tensorboard=True)
    assert not any((tmp_path / "elsewhere").iterdir())


def test_derive_reads_arch_json_with_the_bounded_reader(tmp_path, capsys):
    run = tmp_path / "s"
    run.mkdir()
    (run / "arch.json").write_text("[" * 200_000)
    assert main(["derive", str(run)]) == 2
    assert "not readable JSON" in one_line(capsys)


def test_predict_goes_on_past_a_fifo_and_a_folder_refuses_one(trained, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(good)
    os.mkfifo(tmp_path / "pipe.png")
    assert main(["predict", "--checkpoint", str(trained), str(tmp_path / "pipe.png"), str(good)]) != 0
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


def test_a_folder_of_the_users_own_files_is_refused_and_left_as_it_was(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true}')
    (out / "arch.json").write_text("my notes")
    assert main(["search", *TINY_SEARCH, "--out", str(out)]) == 2
    assert "not empty and holds no pcdarts run" in one_line(capsys)
    assert (out / "config.json").read_text() == '{"mine": true}' and (out / "arch.json").read_text() == "my notes"
    assert sorted(p.name for p in out.iterdir()) == ["arch.json", "config.json"]


def test_overwrite_removes_only_what_the_run_wrote(tmp_path):
    out = tmp_path / "run"
    RunDir(out, kind="search", final="genotype.json")
    for name in ("checkpoint.pt", "metrics.jsonl", "genotype.json"):
        (out / name).write_text("old run")
    (out / "environment.json").write_text('{"pcdarts": "0.1.0", "torch": "2.13.0"}')  # what marks a run
    (out / "tb").mkdir()
    (out / "tb" / "events.out.tfevents.1.host").write_text("old events")
    (out / "tb" / "my_notes.txt").write_text("keep me")
    (out / "paper.pdf").write_text("keep me too")
    RunDir(out, kind="search", overwrite=True, final="genotype.json")
    assert sorted(p.name for p in out.iterdir()) == ["paper.pdf", "tb"]
    assert [p.name for p in (out / "tb").iterdir()] == ["my_notes.txt"]


@pytest.mark.parametrize("target", ["/", "/usr", "~"])
def test_obviously_wrong_targets_are_refused(target, capsys):
    with pytest.raises(RunError, match="refusing to write a run into"):
        check_out_path(target)
    assert main(["search", *TINY_SEARCH, "--out", target]) == 2
    assert "refusing to write a run into" in one_line(capsys)
    assert not Path("/.lock").exists()


def test_a_symlink_loop_as_out_is_one_line(tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(RunError, match="cannot be resolved"):
        check_out_path(tmp_path / "a")
    assert main(["search", "--dataset", "synthetic", "--out", str(tmp_path / "a")]) == 2
    assert "cannot be resolved" in one_line(capsys)
