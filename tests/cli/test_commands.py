"""A new user's first hour: printed next steps run as printed, runs remember their data, warnings that matter."""

import json
import shlex

import pytest
import torch

import pcdarts
from pcdarts.cli import main
from pcdarts.nas.genotype import GENOTYPES, Genotype
from pcdarts.runs.train import chance_warnings, selection_warnings
from tests.conftest import one_line
from tests.tiny import QUARTER_SEARCH, QUARTER_TRAIN, TINY_SEARCH, TINY_TRAIN


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fh") / "s"
    assert main(["search", *TINY_SEARCH, "--out", str(out)]) == 0
    return out


def test_the_printed_next_line_runs_as_printed_with_the_searchs_data(search_run, tmp_path, capsys, caplog):
    assert main(["search", "--resume", "--out", str(search_run), "--no-progress"]) == 0  # prints the summary again
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("next: "))[len("next: ") :]
    args = shlex.split(line)
    assert args[:2] == ["pcdarts", "train"]
    caplog.set_level("INFO")
    assert main([*args[1:], "--epochs", "1", "--no-progress", "--threads", "1"]) == 0
    cfg = json.loads((search_run.parent / "s-train" / "config.json").read_text())
    assert cfg["dataset"] == "synthetic" and cfg["image_size"] == 8  # taken from the search, not the defaults
    assert "data as the search in" in caplog.text


def test_eval_of_a_run_takes_its_data_from_the_run(tmp_path, monkeypatch, capsys):
    from tests.idx_data import write_idx

    data = write_idx(tmp_path / "idx")
    out = tmp_path / "t"
    args = ["train", *TINY_TRAIN, "--dataset", "fashion-mnist", "--data", str(data), "--out", str(out),
            "--train-images", "0", "--genotype", "DARTS_V2"]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--json"]) == 0  # no --data: the run remembers it
    printed = json.loads(capsys.readouterr().out)
    assert printed["images"] == 40
    assert pcdarts.evaluate_trained(out) == {**printed, "classes": 10}  # the command prints the library's figures


def test_warnings_for_a_model_at_chance_and_a_validation_split_too_small():
    at_chance = {"num_classes": 3, "test_images": 24, "test_accuracy": 0.3333}
    assert "at chance level" in chance_warnings(at_chance)[0]
    assert chance_warnings({**at_chance, "test_accuracy": 0.9}) == []
    small = {"num_classes": 3, "val_images": 24, "selected_by": "val"}
    assert "24 images for 3 classes" in selection_warnings(small)[0]
    assert (
        selection_warnings({**small, "val_images": 300}) == []
        and selection_warnings({**small, "selected_by": "x"}) == []
    )


def test_a_collapsed_search_suggests_the_cap():
    from pcdarts.runs.search import collapse_note

    pool, conv = [["max_pool_3x3", 0], ["skip_connect", 1]] * 4, [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 4
    collapsed = Genotype.from_dict({"normal": pool, "normal_concat": [2, 3, 4, 5], "reduce": conv,
                                    "reduce_concat": [2, 3, 4, 5]})  # fmt: skip
    hint = collapse_note(collapsed, "runs/x")
    assert "8 of 8 normal" in hint and "pcdarts derive runs/x --max-param-free 2" in hint
    assert collapse_note(GENOTYPES["PC_DARTS_cifar"], "runs/x") == ""


@pytest.mark.parametrize("dataset,shape", [("fashion-mnist", [1, 16, 16]), ("folder", [3, 64, 64])])
def test_info_knows_every_dataset_it_names(dataset, shape, capsys):
    assert main(["info", "--genotype", "DARTS_V2", "--dataset", dataset, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input"] == shape


def test_the_lazy_api_is_listed_and_predicts_on_tensors(tmp_path):
    names = dir(pcdarts)
    for name in ("SearchConfig", "run_search", "load_trained", "build_network", "predict", "predict_tensor"):
        assert name in names
    from pcdarts.files import save_checkpoint

    net = pcdarts.build_network(GENOTYPES["DARTS_V2"], num_classes=3, in_channels=1, init_channels=4, layers=3,
                                auxiliary=False)  # fmt: skip
    save_checkpoint(tmp_path / "best.pt", {"kind": "train", "model": net.state_dict(),
                    "genotype": GENOTYPES["DARTS_V2"].to_dict(),
                    "model_args": dict(num_classes=3, in_channels=1, init_channels=4, layers=3, auxiliary=False,
                                       stem="cifar"),
                    "classes": ["a", "b", "c"], "mean": [0.5], "std": [0.25], "input_size": [8, 8],
                    "dataset": "synthetic"})  # fmt: skip
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


def test_a_one_cell_arm_shows_no_spread():
    from pcdarts.experiments.tables import format_table

    row = dict(arm="a", kind="searched", n=1, mean=0.3333, std=0.0, min=0.3333, max=0.3333, params=10,
               param_free_normal=2.0)  # fmt: skip
    assert "n/a (one cell)" in format_table([row]) and "± 0.00" not in format_table([row])
    assert "± 1.00 %" in format_table([{**row, "n": 2, "std": 0.01}])


def test_the_eta_counts_arch_epochs_at_twice_a_warm_up_epoch():
    from pcdarts.runs.engine import epoch_line

    record = {"train_loss": 1.0, "train_acc": 0.5, "epoch_seconds": 10.0}
    cost = lambda e: 2.0 if e >= 1 else 1.0  # noqa: E731 - one warm-up epoch, then arch epochs
    assert "ETA 40 s" in epoch_line("search", record, 0, 3, 10.0, 0, cost)  # two arch epochs of 20 s
    assert "ETA 20 s" in epoch_line("train", record, 0, 3, 10.0, 0)  # plain epochs
    assert "ETA 20 s" in epoch_line("search", record, 1, 3, 30.0, 1, cost)  # resumed: earlier time counted


def test_a_training_records_its_data_and_per_class_accuracy_and_the_report_shows_them(digits_runs, tmp_path):
    from pcdarts.viz.report import build_report

    result = json.loads((digits_runs / "train" / "result.json").read_text())
    assert result["classes"] == [str(i) for i in range(10)] and result["input"] == [1, 8, 8]
    assert result["genotype_from"] == str(digits_runs / "search")
    per_class = result["test_per_class"]
    assert len(per_class) == 10
    assert all(a is None or 0 <= a <= 1 for a in per_class) and any(a is not None for a in per_class)
    page = build_report(digits_runs / "train", tmp_path / "r.html").read_text()
    assert "Test accuracy per class" in page and "dataset" in page and "1 x 8 x 8" in page


def test_evaluate_splits_top1_by_class():
    from pcdarts.data import holdout_part, make_stream
    from pcdarts.data.datasets import TensorDataset
    from pcdarts.runs.engine import evaluate

    class Fixed(torch.nn.Module):  # predicts class 0 for everything
        def forward(self, x):
            return torch.tensor([[1.0, 0.0, 0.0]]).repeat(len(x), 1)

    x = torch.zeros(6, 1, 4, 4)
    y = torch.tensor([0, 0, 1, 1, 1, 0])
    ds = TensorDataset("t", x, y, x, y, 3, (0.0,), (1.0,))
    stats = evaluate(Fixed(), make_stream(ds, holdout_part(ds), 4, train=False))
    assert stats["per_class"] == [1.0, 0.0, None] and stats["top1"] == 0.5


def test_a_finished_search_and_training_can_be_extended_and_say_so(tmp_path, capsys, caplog):
    import logging

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


def _to_format_1(run):
    """Rewrite a run's files as pcdarts wrote them before format 2: epochs counted from 0 in files."""
    for name in ("metrics.jsonl", "arch_history.jsonl"):
        if (run / name).is_file():
            rows = [json.loads(ln) for ln in (run / name).read_text().splitlines()]
            (run / name).write_text("".join(json.dumps({**r, "epoch": r["epoch"] - 1}) + "\n" for r in rows))
    for name in ("result.json", "search_result.json"):
        if (run / name).is_file():
            r = json.loads((run / name).read_text())
            del r["format"]
            if "selected_epoch" in r:
                r["selected_epoch"] -= 1
            (run / name).write_text(json.dumps(r))
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state["format"]
    for h in state.get("history", []):
        h["epoch"] -= 1
    if "epoch" in state.get("best", {}):
        state["best"]["epoch"] -= 1
    torch.save(state, run / "checkpoint.pt")
    for name in ("best.pt", "last.pt"):
        if (run / name).is_file():
            model = torch.load(run / name, weights_only=True)
            del model["format"]
            model["epoch"] -= 1
            torch.save(model, run / name)


def test_epochs_count_from_one_in_every_file_and_older_runs_read_the_same(tmp_path, capsys):
    from pcdarts.runs.formats import FILE_FORMAT, read_epoch_log, read_result

    s, t = tmp_path / "s", tmp_path / "t"
    assert main(["search", "--dataset", "synthetic", "--out", str(s), *QUARTER_SEARCH]) == 0
    assert main(["train", "--genotype", "DARTS_V2", "--dataset", "synthetic", "--out", str(t), *QUARTER_TRAIN]) == 0
    said = capsys.readouterr().out
    result = json.loads((t / "result.json").read_text())
    assert result["format"] == FILE_FORMAT == 2 and 1 <= result["selected_epoch"] <= result["epochs"] == 2
    assert f"model from epoch {result['selected_epoch']} " in said  # the console and the file agree
    assert torch.load(t / "best.pt", weights_only=True)["epoch"] == result["selected_epoch"]
    for run in (s, t):
        assert [m["epoch"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())] == [1, 2]
    assert [h["epoch"] for h in map(json.loads, (s / "arch_history.jsonl").read_text().splitlines())] == [1, 2]

    # a run written before format 2 (epochs from 0 in files) reads, plots, resumes and extends the same
    _to_format_1(s)
    _to_format_1(t)
    assert [m["epoch"] for m in read_epoch_log(t / "metrics.jsonl")] == [1, 2]
    assert read_result(t / "result.json")["selected_epoch"] == result["selected_epoch"]
    assert main(["plot", "--run", str(s), "--out", str(tmp_path / "p"), "--epochs", "1", "2"]) == 0
    assert main(["report", str(t)]) == 0
    assert main(["search", "--resume", "--out", str(s), "--epochs", "3", "--extend", "--no-progress"]) == 0
    assert main(["train", "--resume", "--out", str(t), "--epochs", "3", "--extend", "--no-progress"]) == 0
    for run in (s, t):
        assert [m["epoch"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())] == [1, 2, 3]
    assert [h["epoch"] for h in map(json.loads, (s / "arch_history.jsonl").read_text().splitlines())] == [1, 2, 3]
    after = json.loads((t / "result.json").read_text())
    assert after["format"] == 2 and 1 <= after["selected_epoch"] <= 3
    assert after["extended_from"]["selected_epoch"] == result["selected_epoch"]
    shipped = torch.load(t / "best.pt", weights_only=True)  # the old epoch's or a new one's: counted from 1
    assert shipped["format"] == 2 and shipped["epoch"] == after["selected_epoch"]


def test_old_format_records_are_read_from_one_once_and_nothing_else_is_touched(tmp_path):
    from pcdarts.runs.formats import epochs_from_one, upgrade_epochs, upgrade_model_state
    from pcdarts.runs.metrics import MetricsLog

    assert epochs_from_one([{"epoch": 0}, {"epoch": 1}, "x"]) == [{"epoch": 1}, {"epoch": 2}, "x"]
    assert epochs_from_one([{"epoch": False}, {"epoch": 1}]) == [{"epoch": False}, {"epoch": 1}]  # no int 0
    old = {"selected_epoch": 0, "early_stop": {"epoch": 3}, "best": {"epoch": 2}, "history": [{"epoch": 0}]}
    new = upgrade_epochs(old)
    assert new == {"selected_epoch": 1, "early_stop": {"epoch": 4}, "best": {"epoch": 3}, "history": [{"epoch": 1}],
                   "format": 2}  # fmt: skip
    assert upgrade_epochs(new) is new and upgrade_epochs({"format": "2", "selected_epoch": 0})["selected_epoch"] == 0
    assert upgrade_model_state({"epoch": 4}) == {"epoch": 5, "format": 2}
    assert upgrade_model_state({"epoch": 4, "format": 2})["epoch"] == 4

    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"epoch": e, "loss": e}) + "\n" for e in (0, 1, 2)))
    MetricsLog(log, resume_epoch=2, tensorboard=False, old_format=True).close()  # 2 epochs done, 0-based log
    assert [json.loads(x)["epoch"] for x in log.read_text().splitlines()] == [1, 2]
    MetricsLog(log, resume_epoch=2, tensorboard=False, old_format=True).close()  # killed before a new checkpoint
    assert [json.loads(x)["epoch"] for x in log.read_text().splitlines()] == [1, 2]  # not shifted twice
    log.write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (False, 1, 2, 3)))  # a current log
    MetricsLog(log, resume_epoch=2, tensorboard=False).close()
    assert [json.loads(x)["epoch"] for x in log.read_text().splitlines()] == [False, 1, 2]


def test_a_config_of_the_wrong_shape_on_resume_is_one_line_or_the_checkpoint_is_used(search_run, capsys, caplog):
    cfg = search_run / "config.json"
    good = cfg.read_text()
    try:
        cfg.write_text(json.dumps({**json.loads(good), "epochs": "3", "layers": None}))
        assert main(["search", "--resume", "--out", str(search_run), "--no-progress"]) == 2
        assert "wrong type (epochs)" in one_line(capsys)
        cfg.write_text("[]")  # unreadable as a config: the checkpoint's copy is used
        assert main(["search", "--resume", "--out", str(search_run), "--no-progress"]) == 0
        assert "is unreadable: resuming with the settings" in caplog.text
    finally:
        cfg.write_text(good)
