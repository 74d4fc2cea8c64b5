"""Runs that survive: exact resume, atomic checkpoints, signals, and one-line errors for bad input."""

import hashlib
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pcdarts.cli import main
from pcdarts.files import load_checkpoint, save_checkpoint
from pcdarts.runs.config import SearchConfig, TrainConfig, resolve_config
from pcdarts.runs.train import run_train
from tests.conftest import one_line
from tests.tiny import (
    ENV,
    QUARTER_SEARCH,
    QUARTER_SEARCH_CONFIG,
    QUARTER_TRAIN,
    QUARTER_TRAIN_CONFIG,
    TINY,
    TINY_DIGITS,
    TINY_SEARCH,
)

# 4 epochs: the second checkpoint is cut with two epochs still to run; 3 steps an epoch at batch 128: long enough
# to be killed between checkpoints
SEARCH4 = ["search", *TINY_DIGITS, "--epochs", "4", "--warmup-epochs", "1", "--batch-size", "128"]


def _cli(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "pcdarts", "-q", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_epoch(ckpt: Path, epoch: int, proc, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if ckpt.is_file():
            try:
                if torch.load(ckpt, weights_only=True)["epoch"] >= epoch:
                    return
            except Exception:
                pass
        if proc.poll() is not None:
            raise AssertionError(f"run ended before epoch {epoch}: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the checkpoint")


def _losses(run: Path):
    rows = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    return [(m["epoch"], m["train_loss"], m.get("arch_loss")) for m in rows]


@pytest.mark.slow
def test_sigkill_after_second_checkpoint_then_resume_is_bit_identical(tmp_path):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    p = _cli(*SEARCH4, "--out", str(ref))
    q = _cli(*SEARCH4, "--out", str(cut))
    _wait_for_epoch(cut / "checkpoint.pt", 2, q)
    q.send_signal(signal.SIGKILL)
    q.wait()
    assert p.wait() == 0, p.stderr.read()
    assert not (cut / "genotype.json").exists()
    r = _cli(*SEARCH4, "--out", str(cut), "--resume")
    assert r.wait() == 0, r.stderr.read()
    assert (cut / "genotype.json").read_text() == (ref / "genotype.json").read_text()
    assert json.loads((cut / "arch.json").read_text()) == json.loads((ref / "arch.json").read_text())
    assert _losses(cut) == _losses(ref)
    hist = [json.loads(x)["epoch"] for x in (cut / "arch_history.jsonl").read_text().splitlines()]
    assert hist == list(range(1, 5))


@pytest.mark.slow
def test_sigint_checkpoints_mid_run_and_exits_zero(tmp_path):
    out = tmp_path / "run"
    p = _cli(*SEARCH4, "--out", str(out))
    _wait_for_epoch(out / "checkpoint.pt", 1, p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0
    assert "--resume" in err
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] >= 1 and not (out / "genotype.json").exists()
    r = _cli(*SEARCH4, "--out", str(out), "--resume")
    assert r.wait() == 0, r.stderr.read()
    assert json.loads((out / "genotype.json").read_text())["normal_concat"] == [2, 3, 4, 5]


def test_training_resume_matches_an_uninterrupted_run(tmp_path, stop_after):
    torch.set_num_threads(1)
    cfg = resolve_config(
        TrainConfig, "digits", dict(QUARTER_TRAIN_CONFIG, epochs=3, genotype="DARTS_V2", drop_path=0.2, threads=1)
    )
    full = run_train(cfg, tmp_path / "full", progress=False)
    with stop_after(1):
        part = run_train(cfg, tmp_path / "part", progress=False)
    assert part["stopped"]
    ckpt = load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    assert ckpt["seconds"] > 0 and ckpt["cpu_seconds"] > 0
    save_checkpoint(tmp_path / "part" / "checkpoint.pt", {**ckpt, "seconds": 1e5, "cpu_seconds": 1e5})
    resumed = run_train(cfg, tmp_path / "part", progress=False, resume=True)
    assert resumed["test_accuracy"] == full["test_accuracy"] and resumed["test_loss"] == full["test_loss"]
    # the time before the stop (as its checkpoint says) is counted on: wall and CPU (this process's)
    assert 1e5 < resumed["seconds"] < 1e5 + 600 and 1e5 < resumed["cpu_seconds"] < 1e5 + 600
    epochs = [json.loads(x) for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in epochs] == [1, 2, 3] and all(m["epoch_cpu_seconds"] > 0 for m in epochs)
    a = load_checkpoint(tmp_path / "full" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "part" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kept", ["part", "old", "damaged"])
def test_an_epoch_stopped_inside_counts_its_time_on_after_the_resume(tmp_path, monkeypatch, caplog, kept):
    """A stop inside an epoch keeps the time that epoch had taken; the resumed epoch's figures count on from it
    (wall, CPU and per step), so metrics.jsonl does not show a cut epoch as a cheap one. A checkpoint from
    before the record was kept, or with a damaged one, restarts that epoch's count (warned when damaged)."""
    import pcdarts.runs.loop as loop

    class StopAtFirstStep(loop.GracefulStop):  # as a Ctrl-C during the first step
        @property
        def requested(self):
            return True

        @requested.setter
        def requested(self, value):
            pass

    torch.set_num_threads(1)
    cfg = resolve_config(TrainConfig, "digits", dict(QUARTER_TRAIN_CONFIG, genotype="DARTS_V2", threads=1))
    with monkeypatch.context() as m:
        m.setattr(loop, "GracefulStop", StopAtFirstStep)
        assert run_train(cfg, tmp_path / "r", progress=False)["stopped"]
    ckpt = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    assert ckpt["mid_epoch"] and ckpt["epoch"] == 0 and ckpt["epoch_part"]["seconds"] > 0
    if kept == "part":  # what the first part of epoch 1 took, as its checkpoint says
        ckpt["epoch_part"] = {"seconds": 5e4, "cpu_seconds": 4e4}
    elif kept == "old":
        del ckpt["epoch_part"]
    else:
        ckpt["epoch_part"] = {"seconds": "soon"}
    save_checkpoint(tmp_path / "r" / "checkpoint.pt", ckpt)
    run_train(cfg, tmp_path / "r", progress=False, resume=True)
    first, second = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    if kept == "part":
        assert 5e4 < first["epoch_seconds"] < 5e4 + 600 and 4e4 < first["epoch_cpu_seconds"] < 4e4 + 600
        assert first["step_seconds"] > 5e4 / 3  # 3 steps of 128 (the last short) in 360 images
    else:
        assert first["epoch_seconds"] < 600 and first["epoch_cpu_seconds"] < 600
    assert ("record of the stopped epoch's time is damaged" in caplog.text) == (kept == "damaged")
    assert second["epoch_seconds"] < 600 and second["epoch_cpu_seconds"] < 600


def test_a_run_clock_counts_on_from_its_checkpoint_and_knows_what_it_missed():
    from pcdarts.runs.metrics import RunClock

    fresh = RunClock()
    assert 0 <= fresh.wall() < 5 and 0 <= fresh.cpu() < 5 and set(fresh.state()) == {"seconds", "cpu_seconds"}
    resumed = RunClock({"seconds": 100.0, "cpu_seconds": 80.0})
    assert resumed.wall() >= 100.0 and resumed.cpu() >= 80.0
    old = RunClock({"seconds": 100.0})  # a checkpoint written before CPU time was kept
    assert old.wall() >= 100.0 and old.cpu() is None and set(old.state()) == {"seconds"}


def test_a_run_resumed_by_other_code_names_every_revision_that_ran_it(tmp_path, monkeypatch):
    """environment.json is rewritten on each resume: the revisions of earlier parts go on in ``earlier``."""
    import pcdarts.runs.environment as env_mod
    from pcdarts.experiments.units import run_revisions

    assert run_revisions(tmp_path) == {"revision": None}  # no environment.json: nothing to name
    for rev in ("a" * 40, "a" * 40, "b" * 40, "b" * 40, "c" * 40):  # a resume by the same code adds nothing
        monkeypatch.setattr(env_mod, "revision", lambda rev=rev: rev)
        env = env_mod.write_environment(tmp_path, device="cpu")
    assert env["git"] == "c" * 40 and env["device"] == "cpu"
    assert [e["git"] for e in env["earlier"]] == ["a" * 40, "b" * 40]
    assert run_revisions(tmp_path, "search_") == {
        "search_revision": "c" * 40,
        "search_earlier_revisions": ["a" * 40, "b" * 40],
    }
    (tmp_path / "environment.json").write_text('{"git": "' + "d" * 40 + '", "earlier": null}')  # hand-edited
    assert [e["git"] for e in env_mod.write_environment(tmp_path)["earlier"]] == ["d" * 40]
    (tmp_path / "environment.json").write_text("{not json")  # damaged: rewritten, not a crash
    assert "earlier" not in env_mod.write_environment(tmp_path)
    from pcdarts.runs.rundir import RunDir

    RunDir(tmp_path, kind="search", overwrite=True, final="search_result.json")  # a run replaced, not resumed
    monkeypatch.setattr(env_mod, "revision", lambda: "e" * 40)
    assert "earlier" not in env_mod.write_environment(tmp_path)  # names nothing of the run it replaced


def test_checkpoint_holds_everything_to_continue(digits_runs):
    state = load_checkpoint(digits_runs / "search" / "checkpoint.pt")
    for key in (
        "model",
        "w_optimizer",
        "arch_optimizer",
        "epoch",
        "rng",
        "train_stream",
        "val_stream",
        "history",
        "config",
    ):
        assert key in state
    assert "alphas_normal" in state["model"] and len(state["history"]) == 2
    assert {"python", "numpy", "torch"} <= set(state["rng"])


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _bad_cases(fin: Path, tmp: Path) -> list[tuple[list[str], str]]:
    (tmp / "corrupt.pt").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    good = (fin / "checkpoint.pt").read_bytes()
    (tmp / "truncated.pt").write_bytes(good[: len(good) // 2])
    (tmp / "bad.json").write_text('{"normal": [["sep_conv_3x3", 0]')
    new = str(tmp / "new")
    return [
        (["search", "--dataset", "no_such_data", "--out", new], "unknown dataset"),
        (["train", "--genotype", "NO_SUCH_GENOTYPE", "--out", new], "not a built-in genotype"),
        (["train", "--genotype", str(tmp / "missing.json"), "--out", new], "not a built-in genotype"),
        (["eval", "--checkpoint", str(tmp / "missing.pt")], "does not exist"),
        (["eval", "--checkpoint", str(tmp / "corrupt.pt")], "damaged or not a checkpoint"),
        (["eval", "--checkpoint", str(tmp / "truncated.pt")], "damaged or not a checkpoint"),
        (
            ["search", "--dataset", "digits", "--out", str(fin), "--resume", "--k", "2", *QUARTER_SEARCH],
            "was written with k=4",
        ),
        (["train", "--genotype", str(tmp / "bad.json"), "--out", new], "bad.json is not readable JSON"),
        (["train", "--genotype", "Genotype(normal=[('sep_conv_3x3', 7)] * 8)", "--out", new], "literals"),
        (["info", "--genotype", "Genotype(normal=[('sep_conv_3x3', 5), ('skip_connect', 0)], reduce=[])"], "input 5"),
        (["search", "--out", new, "--k", "3"], "does not divide"),
        (["search", "--out", new, "--layers", "2"], "layers must be >= 3"),
        (["search", "--out", new, "--epochs", "-1"], "epochs must be between 1 and 10,000"),
        (["train", "--out", new, "--batch-size", "0"], "batch size must be >= 1"),
        (["search", "--out", new, "--epochs", "4", "--warmup-epochs", "4"], "warm-up epochs"),
        (["search", "--dataset", "digits", "--out", str(fin), *QUARTER_SEARCH], "already holds a finished run"),
        (["search", "--dataset", "digits", "--out", str(tmp / "nothing"), "--resume"], "nothing to resume"),
        (
            ["search", "--out", new, "--device", "cuda:0"]
            if not torch.cuda.is_available()
            else ["search", "--out", new, "--device", "tpu"],
            "device",
        ),
    ]


def test_bad_input_table(digits_runs, tmp_path, capsys):
    finished_search = digits_runs / "search"  # shared: the cases below must leave it as it was (asserted)
    before = _digest(finished_search)
    for argv, message in _bad_cases(finished_search, tmp_path):
        code = main(argv)
        err = capsys.readouterr().err.strip()
        assert code == 2, (argv, err)
        assert message in err, (argv, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err, (argv, err)
    assert _digest(finished_search) == before  # nothing earlier was touched
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())


def test_bad_input_from_the_real_console_has_no_traceback(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "pcdarts", "search", "--k", "3", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch, stop_after):
    import pcdarts.runs.search as search_mod

    out = tmp_path / "nan"
    argv = ["search", "--dataset", "digits", "--out", str(out), *QUARTER_SEARCH, "--epochs", "3"]

    cfg = resolve_config(SearchConfig, "digits", dict(QUARTER_SEARCH_CONFIG, epochs=3))
    with stop_after(1):
        stopped = search_mod.run_search(cfg, out, progress=False)
    assert stopped["stopped"]
    good = (out / "checkpoint.pt").read_bytes()
    real = search_mod.epoch_stats
    monkeypatch.setattr(search_mod, "epoch_stats", lambda acc: {**real(acc), "loss": float("nan")})
    code = main([*argv, "--resume"])
    err = capsys.readouterr().err
    assert code == 1 and "last good checkpoint" in err and "Traceback" not in err
    assert (out / "checkpoint.pt").read_bytes() == good
    assert not (out / "genotype.json").exists()


def test_a_loss_that_diverges_before_any_checkpoint_says_so(tmp_path, capsys):
    args = ["train", "--genotype", "DARTS_V2", *TINY, "--epochs", "2", "--lr", "1e9"]
    assert main([*args, "--out", str(tmp_path / "t")]) == 1  # the run failed (exit 1), not the input (2)
    err = one_line(capsys)
    assert "in the first epoch, before any checkpoint" in err and "last good checkpoint" not in err


def test_alpha_far_out_of_range_is_warned_about(tmp_path, caplog):
    args = ["search", *TINY_SEARCH, "--warmup-epochs", "0", "--arch-lr", "1e6"]  # no warm-up: alpha moves at once
    with caplog.at_level(logging.WARNING, logger="pcdarts.runs.search"):
        assert main([*args, "--out", str(tmp_path / "s")]) == 0
    assert caplog.text.count("their softmax is saturated") == 1


def test_overwrite_replaces_a_finished_run(tmp_path):
    out = tmp_path / "copy"
    assert main(["search", "--dataset", "digits", "--out", str(out), *QUARTER_SEARCH]) == 0
    first = (out / "arch.json").read_text()
    assert (
        main(["search", "--dataset", "digits", "--out", str(out), *QUARTER_SEARCH, "--seed", "5", "--overwrite"]) == 0
    )
    assert (out / "arch.json").read_text() != first
    assert json.loads((out / "config.json").read_text())["seed"] == 5


def test_deterministic_mode_repeats_a_run_exactly(tmp_path):
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        code = main(
            ["search", "--dataset", "digits", "--out", str(out), *QUARTER_SEARCH, "--deterministic", "--seed", "7"]
        )
        assert code == 0
        outs.append(out)
    torch.use_deterministic_algorithms(False)
    assert (outs[0] / "arch.json").read_text() == (outs[1] / "arch.json").read_text()
    assert json.loads((outs[0] / "config.json").read_text())["deterministic"] is True


def test_overwrite_leaves_nothing_of_the_old_run(digits_runs, tmp_path):
    import shutil

    out = tmp_path / "old"
    shutil.copytree(digits_runs / "search", out)
    (out / "last.pt").write_bytes(b"stale")
    assert main(["search", "--dataset", "digits", "--out", str(out), *QUARTER_SEARCH, "--epochs", "1",
                 "--warmup-epochs", "0", "--overwrite"]) == 0  # fmt: skip
    assert not (out / "last.pt").exists()
    assert len(json.loads((out / "arch.json").read_text())["alphas_normal"]) == 14
    assert [m["epoch"] for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())] == [1]


def test_busy_machine_is_detected(monkeypatch, caplog):
    import logging
    import os

    import torch

    from pcdarts.runs.environment import warn_if_busy

    monkeypatch.setattr(os, "getloadavg", lambda: (float(os.cpu_count()), 0.0, 0.0))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    with caplog.at_level(logging.WARNING):
        assert warn_if_busy(torch.device("cpu"))
    assert "--threads 1" in caplog.text
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert not warn_if_busy(torch.device("cpu"))


def test_threads_follow_the_load_when_not_given_and_refusals_stay_one_line(tmp_path, monkeypatch, capsys, caplog):
    import os

    monkeypatch.setattr(os, "getloadavg", lambda: (5.0, 5.0, 5.0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        caplog.set_level("INFO")
        out = tmp_path / "busy"
        args = ["search", *TINY_SEARCH, "--out", str(out)]
        args.remove("--threads"), args.remove("1")  # no --threads: the run chooses them from the load
        assert main(args) == 0
        assert "threads: 1 (load 5.0" in caplog.text
        assert json.loads((out / "environment.json").read_text())["torch_threads"] == 1
        capsys.readouterr()
        torch.set_num_threads(2)
        assert main([*args[:3], "--out", str(tmp_path / "nothing"), "--resume"]) == 2  # refused before any warning
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "nothing to resume" in err
    finally:
        torch.set_num_threads(before)


def test_a_finished_search_and_training_can_be_extended_and_say_so(tmp_path, capsys, caplog):
    s, t = str(tmp_path / "s"), str(tmp_path / "t")
    assert main(["search", "--dataset", "synthetic", "--out", s, *QUARTER_SEARCH]) == 0
    capsys.readouterr()
    assert main(["search", "--resume", "--out", s, "--epochs", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "asks for 3" in err and "--extend" in err  # refused, with the way to do it
    assert main(["search", "--resume", "--out", s, "--epochs", "2", "--extend", "--no-progress"]) == 2
    assert "--extend needs --epochs above the run's 2" in capsys.readouterr().err
    assert main(["search", "--out", s + "x", "--dataset", "synthetic", "--extend", *QUARTER_SEARCH]) == 2
    assert "add --resume" in capsys.readouterr().err
    assert main(["search", "--resume", "--out", s, "--epochs", "3", "--extend", "--no-progress"]) == 0
    history = [json.loads(ln) for ln in (tmp_path / "s" / "arch_history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert json.loads((tmp_path / "s" / "config.json").read_text())["epochs"] == 3

    assert main(["train", "--genotype", "DARTS_V2", "--dataset", "synthetic", "--out", t, *QUARTER_TRAIN]) == 0
    before = json.loads((tmp_path / "t" / "result.json").read_text())
    with caplog.at_level(logging.WARNING):
        assert main(["train", "--resume", "--out", t, "--epochs", "3", "--extend", "--no-progress"]) == 0
    after = json.loads((tmp_path / "t" / "result.json").read_text())
    assert after["epochs"] == 3 and after["extended_from"]["epochs"] == 2
    assert after["extended_from"]["test_accuracy"] == before["test_accuracy"]
    assert "second look" in caplog.text  # the test split was read before: said, and kept in result.json
    metrics = [json.loads(ln) for ln in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]


def test_resuming_with_another_process_count_is_a_one_line_error(tmp_path, capsys):
    from pcdarts.files import load_checkpoint, save_checkpoint

    out = tmp_path / "s"
    assert main(["search", "--out", str(out), *TINY_SEARCH, "--epochs", "3"]) == 0
    state = load_checkpoint(out / "checkpoint.pt")
    state["train_stream"] = [state["train_stream"]] * 2  # as two torchrun processes would have saved it
    save_checkpoint(out / "checkpoint.pt", state)
    (out / "genotype.json").unlink()
    capsys.readouterr()
    assert main(["search", "--out", str(out), *TINY_SEARCH, "--epochs", "3", "--resume"]) == 2
    assert "written by 2 process(es) but 1 are resuming" in capsys.readouterr().err
