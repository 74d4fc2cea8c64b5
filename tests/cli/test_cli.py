import errno
import json
import subprocess
import sys

import pytest

from pcdarts.cli import COMMANDS, main
from tests.conftest import assert_refused, one_line
from tests.tiny import QUARTER_SEARCH, QUARTER_TRAIN, TINY_SEARCH_CONFIG, TINY_TRAIN


@pytest.mark.parametrize(
    "cmd", [[], ["search"], ["train"], ["eval"], ["info"], ["genotypes"], ["demo"], ["bench"], ["bench", "step"]]
)
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main(cmd + ["--help"])
    assert exc.value.code == 0
    assert "usage: pcdarts" in capsys.readouterr().out


def test_console_entry_point_and_module_run():
    r = subprocess.run([sys.executable, "-m", "pcdarts", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("pcdarts ")


def test_search_help_lists_every_hyperparameter(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--batch-size",
        "--lr",
        "--arch-lr",
        "--k",
        "--edge-norm",
        "--no-edge-norm",
        "--warmup-epochs",
        "--init-channels",
        "--layers",
        "--seed",
        "--unrolled",
        "--device",
        "--partial-mode",
    ):
        assert flag in out


def test_info_json_pc_darts_cifar(capsys):
    assert main(["info", "--genotype", "PC_DARTS_cifar", "--dataset", "cifar10", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert isinstance(info["params"], int) and isinstance(info["macs"], int)
    assert abs(info["params"] - 3_634_678) <= 0.005 * 3_634_678


@pytest.mark.parametrize("dataset", ["digits", "fashion-mnist", "mnist", "folder"])
def test_info_builds_the_network_train_would(dataset, capsys):
    """``info`` reports the C and cells that ``pcdarts train --dataset`` uses, not a copy that can drift."""
    from pcdarts.runs.config import TrainConfig, resolve_config

    cfg = resolve_config(TrainConfig, dataset, {})
    assert main(["info", "--genotype", "DARTS_V2", "--dataset", dataset, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["init_channels"], info["layers"]) == (cfg.init_channels, cfg.layers)


@pytest.mark.slow
def test_info_json_pc_darts_image(capsys):
    assert main(["info", "--genotype", "PC_DARTS_image", "--dataset", "imagenet", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert abs(info["params"] - 5_342_464) <= 0.005 * 5_342_464
    assert abs(info["macs"] - 597_000_000) <= 0.03 * 597_000_000


@pytest.mark.slow
def test_two_epoch_digits_search_writes_a_valid_genotype(tmp_path):
    from pcdarts import Genotype

    out = tmp_path / "run"
    assert main(["search", "--dataset", "digits", "--out", str(out), *QUARTER_SEARCH]) == 0
    g = Genotype.from_dict(json.loads((out / "genotype.json").read_text()))
    assert g.steps == 4
    history = [json.loads(ln) for ln in (out / "arch_history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]  # counted from 1, as the console counts
    assert len(history[0]["alphas_normal"]) == 14
    metrics = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["arch_active"] is False and metrics[1]["arch_active"] is True
    assert (out / "checkpoint.pt").is_file()
    assert history[1]["alphas_normal"] != history[0]["alphas_normal"]  # alpha moves once warm-up ends
    # train the found genotype from the search folder, then re-evaluate it
    tout = tmp_path / "train"
    assert main(["train", "--genotype", str(out), "--dataset", "digits", "--out", str(tout), *QUARTER_TRAIN]) == 0
    result = json.loads((tout / "result.json").read_text())
    for key in ("test_accuracy", "params", "macs", "epochs", "seconds"):
        assert key in result
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert main(["eval", "--checkpoint", str(tout / "best.pt"), "--json"]) == 0


def test_plan_predicts_partial_channel_savings(capsys):
    assert main(["plan", "--batch-size", "8", "--init-channels", "8", "--layers", "3", "--size", "16", "--json"]) == 0
    rows = {r["k"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {1, 2, 4, 8}
    ratio = rows[4]["predicted_peak_bytes"] / rows[1]["predicted_peak_bytes"]
    assert ratio <= 0.40
    assert rows[8]["activations_bytes"] < rows[4]["activations_bytes"] < rows[2]["activations_bytes"]


def test_auto_batch_size_scales_the_lr(capsys):
    assert main(["search", "--dataset", "digits", "--out", "unused", "--batch-size", "auto", "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["batch_size"] % 8 == 0 and cfg["batch_size"] >= 8
    assert cfg["lr"] == pytest.approx(0.05 * cfg["batch_size"] / 64)


@pytest.mark.compile
def test_compiled_training_follows_the_eager_run(tmp_path, digits_runs):
    """--compile trains the same network: first-epoch loss as the eager run's, checkpoint loads without it.

    To 1 %, not closer: this tiny network's first epoch amplifies rounding. Eager channels_last against eager
    contiguous, the same function in float64, differ by 0.14 % in first-epoch loss (2.2913 / 2.2945); the
    compiled run differed from eager by 0.30 % (2.6309 / 2.6389) on 2026-12-05."""
    from pcdarts import load_model

    out = tmp_path / "compiled"
    assert (
        main(
            [
                "train",
                "--genotype",
                str(digits_runs / "search"),
                "--dataset",
                "digits",
                "--out",
                str(out),
                "--compile",
                *QUARTER_TRAIN,
            ]
        )
        == 0
    )
    eager = [json.loads(line) for line in (digits_runs / "train" / "metrics.jsonl").read_text().splitlines()]
    compiled = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    eager, compiled = [r for r in eager if "train_loss" in r], [r for r in compiled if "train_loss" in r]
    assert compiled[0]["train_loss"] == pytest.approx(eager[0]["train_loss"], rel=1e-2)
    assert json.loads((out / "config.json").read_text())["compile"] is True
    load_model(out / "best.pt")  # plain state dict: no compiled-module prefixes


def test_compile_failure_is_one_line(tmp_path, monkeypatch, capsys):
    """A machine where torch.compile cannot work (no C++ compiler, say): one line, exit 2, nothing half-written."""
    import torch
    from torch._dynamo.exc import TorchDynamoException

    def broken(*a, **k):
        raise TorchDynamoException("CppCompileError: no C++ compiler found\nlong trace...")

    monkeypatch.setattr(torch, "compile", lambda fn, **k: broken)
    out = tmp_path / "c"
    assert (
        main(
            [
                "train",
                "--genotype",
                "PC_DARTS_cifar",
                "--dataset",
                "digits",
                "--out",
                str(out),
                "--compile",
                *QUARTER_TRAIN,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "pcdarts train: error: torch.compile failed (CppCompileError: no C++ compiler found); "
        "run again without --compile"
    )
    assert not (out / "best.pt").exists() and not (out / "result.json").exists()


def test_warm_up_follows_the_epochs_unless_given(caplog):
    import logging

    from pcdarts.runs.config import SearchConfig, resolve_config

    with caplog.at_level(logging.INFO):
        assert resolve_config(SearchConfig, "digits", {"epochs": 2}).warmup_epochs == 1
    assert "warm-up: 1 of 2 epochs" in caplog.text
    assert resolve_config(SearchConfig, "cifar10", {"epochs": 10}).warmup_epochs == 3
    assert resolve_config(SearchConfig, "digits", {"epochs": 1}).warmup_epochs == 0
    assert resolve_config(SearchConfig, "digits", {"epochs": 20, "warmup_epochs": 2}).warmup_epochs == 2
    assert SearchConfig.for_dataset("digits").epochs == 8  # the library gets the CLI's per-dataset defaults


def test_resume_with_only_out_continues_with_the_runs_own_settings(tmp_path, capsys, stop_after):
    from pcdarts.runs.config import SearchConfig
    from pcdarts.runs.search import run_search

    out = tmp_path / "s"
    cfg = SearchConfig.for_dataset("synthetic", **{**TINY_SEARCH_CONFIG, "epochs": 3})
    with stop_after(1):
        stopped = run_search(cfg, out, progress=False)
    assert stopped["stopped"]
    assert main(["search", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert (out / "genotype.json").is_file()
    assert json.loads((out / "config.json").read_text())["image_size"] == 8


def test_help_groups_the_settings_and_every_flag_says_what_it_does(capsys):
    import argparse

    from pcdarts.cli.parser import build_parser

    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = capsys.readouterr().out
    titles = ["data settings:", "network settings:", "supernet and search space settings:", "optimisation settings:",
              "architecture step (alpha and beta) settings:", "collapse remedies (off by default) settings:",
              "device and run settings:"]  # fmt: skip
    assert [out.index(t) for t in titles] == sorted(out.index(t) for t in titles)
    assert "other settings:" not in out  # every field has its group
    assert "--batch-size N|auto" in out and "default 256; digits: 64" in " ".join(out.split())
    assert "(default None)" not in out.split("--crop-padding")[1].split("--flip")[0]  # the rule, not -1 or None
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sp in sub.choices.items():
        for a in sp._actions:
            assert a.help, (name, a.option_strings)


def test_print_config_says_how_the_dataset_resolves_what_the_config_leaves_to_it(capsys):
    for cmd in ("search", "train"):
        assert main([cmd, "--print-config"]) == 0
        captured = capsys.readouterr()
        assert json.loads(captured.out)["crop_padding"] == -1  # the setting as given ...
        assert "augment: crop padding 2, flips off" in captured.err  # ... and what digits makes of it


def test_plan_a_dataset_search_gives_memory_per_k_and_a_measured_time(capsys):
    from pcdarts.cli import main

    args = ["plan", "--dataset", "synthetic", "--layers", "3", "--init-channels", "8", "--batch-size", "8",
            "--epochs", "4", "--json"]  # fmt: skip
    assert main(args) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [r["k"] for r in plan["memory"]] == [1, 2, 4, 8]
    peaks = [r["predicted_peak_bytes"] for r in plan["memory"]]
    assert peaks == sorted(peaks, reverse=True)  # fewer channels through the ops, less memory
    t = plan["time"]
    assert t["steps_per_epoch"] == 32 and t["epochs"] == 4  # 512 synthetic images, half for the weights, batch 8
    assert 0 < t["warmup_step_s"] and 0 < t["search_step_s"] and t["minutes"] > 0
    assert plan["config"]["shape"] == [3, 32, 32]
    assert main(["plan", "--preset", "paper", "--dataset", "cifar10", "--no-time"]) == 0
    out = capsys.readouterr().out
    assert "cifar10 (preset paper), 50,000 train images" in out and "<- this search" in out
    assert main(["plan", "--dataset", "folder", "--no-time"]) == 2


def test_info_on_a_training_run_shows_its_own_network_and_flags_are_never_abbreviated(tiny_train, capsys):
    from pcdarts.cli import main

    result = json.loads((tiny_train / "result.json").read_text())
    for extra in ([], ["--dataset", "cifar10"]):
        assert main(["info", "--genotype", str(tiny_train), "--json", *extra]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert (shown["params"], shown["input"]) == (result["params"], [1, 8, 8])  # digits: grey
    with pytest.raises(SystemExit):  # --data is not --dataset
        main(["info", "--genotype", "DARTS_V2", "--data", "cifar10"])
    with pytest.raises(SystemExit):
        main(["bench", "step", "--chann", "8"])


def test_messages_for_the_default_genotype_no_cuda_no_onnx_and_ranks_other_than_0(
    tiny_train, tmp_path, capsys, caplog, monkeypatch
):
    import logging
    import sys

    import torch

    from pcdarts.cli import main

    args = ["train", *TINY_TRAIN]
    with caplog.at_level(logging.INFO):
        assert main([*args, "--out", str(tmp_path / "d")]) == 0
    assert caplog.messages[0].startswith("training PC_DARTS_cifar, the default --genotype")
    capsys.readouterr()
    assert main([*args, "--device", "cuda", "--out", str(tmp_path / "c")]) == 2 or torch.cuda.is_available()
    err = capsys.readouterr().err.strip().splitlines()
    assert torch.cuda.is_available() or (len(err) == 1 and "CUDA is not available" in err[0])
    monkeypatch.setitem(sys.modules, "onnx", None)  # a plain install: no onnx package
    onnx_out = str(tmp_path / "m.onnx")
    assert main(["export", "--checkpoint", str(tiny_train), "--format", "onnx", "--out", onnx_out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'pcdarts[onnx]'" in err
    monkeypatch.setenv("RANK", "1")  # under torchrun, a rank other than 0 says only what goes wrong
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main([*args, "--genotype", "DARTS_V2", "--out", str(tmp_path / "r")]) == 0
    assert not any("train epoch" in m for m in caplog.messages)
    monkeypatch.delenv("RANK")
    main(["genotypes"])  # rank 0 again: the library's info lines are back
    assert logging.getLogger("pcdarts").level == logging.NOTSET


def test_a_training_report_shows_its_parameter_free_ops_and_its_time_in_minutes(tiny_train, tmp_path):
    from pcdarts.nas.genotype import Genotype, param_free_count
    from pcdarts.viz.report import build_report

    page = build_report(tiny_train, tmp_path / "page.html").read_text()  # not in the shared run's folder
    genotype = Genotype.from_dict(json.loads((tiny_train / "result.json").read_text())["genotype"])
    summary_row = page.split("</table>")[0].split("<tr>")[-1]
    assert summary_row.endswith(f"<td>{param_free_count(genotype.normal)}</td></tr>")  # the normal cell's count
    assert " min (" in page and "<th>time</th>" in page


def test_quoted_user_text_is_cut_to_a_readable_line(tmp_path, capsys):
    g = {"normal": [["x" * 300_000, 0], ["skip_connect", 1]], "normal_concat": [2],
         "reduce": [["skip_connect", 0], ["skip_connect", 1]], "reduce_concat": [2]}  # fmt: skip
    (tmp_path / "genotype.json").write_text(json.dumps(g))
    assert main(["info", "--genotype", str(tmp_path / "genotype.json")]) == 2
    assert len(one_line(capsys)) < 600


def test_disk_full_names_where_it_was_writing(tmp_path, capsys, monkeypatch):
    def full(ns):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setitem(COMMANDS, "search", full)
    assert main(["search", "--out", str(tmp_path / "r")]) == 2
    err = one_line(capsys)
    assert f"error: {tmp_path / 'r'}: No space left on device" in err and "::" not in err


# Impossible settings and absurd sizes: one line on stderr, exit 2, nothing built (genotype text: test_genotype.py).
CASES = {
    "info-num-classes-0": (["info", "--genotype", "DARTS_V2", "--num-classes", "0"], "num classes must be between"),
    "info-init-channels-0": (["info", "--genotype", "DARTS_V2", "--init-channels", "0"], "init channels must be"),
    "info-layers-huge": (["info", "--genotype", "DARTS_V2", "--layers", "100000"], "layers must be between"),
    "plan-batch-0": (["plan", "--batch-size", "0"], "batch size must be >= 1 and <="),
    "plan-batch-negative": (["plan", "--batch-size", "-1"], "batch size must be >= 1 and <="),
    "plan-batch-huge": (["plan", "--batch-size", "100000000"], "batch size must be >= 1 and <="),
    "plan-k-0": (["plan", "--ks", "0"], "every K must be >= 1"),
    "plan-size-0": (["plan", "--size", "0"], "size must be between"),
    "threads-negative": (["search", "--threads", "-1"], "threads must be between 0"),
    "threads-huge": (["search", "--threads", "100000"], "threads must be between 0"),
    "epochs-huge": (["search", "--epochs", "100000000000000000000"], "epochs must be between 1 and 10,000"),
    "train-epochs-huge": (["train", "--epochs", "20000"], "epochs must be between 1 and 10,000"),
    "cap-reduce-out-of-range": (["search", "--max-param-free-reduce", "9"], "max param-free reduce ops"),
    "memory-format-unknown": (["train", "--memory-format", "nhwc"], "memory format must be one of"),
    "device-mps": (["search", "--device", "mps"], "device must be auto, cpu, cuda"),
    "image-size-huge": (["search", "--image-size", "100000"], "image size must be 0"),
    "momentum-5": (["search", "--momentum", "5"], "momentum must be in [0, 1)"),
    "lr-min-above-lr": (["search", "--lr", "0.1", "--lr-min", "0.5"], "lr min must be between 0 and lr"),
    "cutout-negative": (["train", "--cutout", "-3"], "cutout must be between 0 (off) and"),
    "crop-padding-negative": (["train", "--crop-padding", "-4"], "crop padding must be between 0 and"),
    "crop-padding-huge": (["train", "--crop-padding", "3000"], "crop padding must be between 0 and 256"),
    "seed-negative": (["search", "--seed", "-1"], "seed must be between 0 and 4,294,967,295"),
    "seed-huge": (["train", "--seed", str(2**70)], "seed must be between 0 and"),
    "workers-negative": (["train", "--workers", "-2"], "workers must be >= 0"),
    "aux-weight-negative": (["train", "--auxiliary-weight", "-1"], "auxiliary weight must be >= 0"),
    "lr-nan": (["search", "--lr", "nan"], "lr must be a finite number"),
    "lr-inf": (["train", "--lr", "inf"], "lr must be a finite number"),
    "val-fraction-1": (["train", "--val-fraction", "1"], "val fraction must be in [0, 1)"),
    "cap-out-of-range": (["search", "--max-param-free", "9"], "max param-free ops"),
    "beta-decay-negative": (["search", "--beta-decay", "-1"], "beta decay weight"),
}


@pytest.mark.parametrize("argv,message", CASES.values(), ids=CASES.keys())
def test_one_line_error(argv, message, tmp_path, capsys):
    assert_refused(argv, message, tmp_path, capsys)
