"""`pcdarts fidelity`: every cell at every budget on validation only, tau, summaries, resumption, refusals."""

import json

import pytest

from pcdarts.cli import main
from pcdarts.experiments.fidelity import FidelityConfig, load_fidelity, run_fidelity
from pcdarts.files import load_checkpoint
from tests.conftest import one_line
from tests.pictures import assert_drawn
from tests.tiny import CALIBRATION_TRAIN as TRAIN


def test_calibration_trains_every_cell_at_every_budget_on_validation_only(calibration, capsys):
    out, _ = calibration
    fid = load_fidelity(out)
    assert fid["complete"] and len(fid["rows"]) == 3 * 2 + 3
    assert sorted({(r["cell"], r["budget_epochs"], r["train_seed"]) for r in fid["rows"]}) == sorted(
        [(c, b, 0) for c in range(3) for b in (1, 2)] + [(c, 2, 1) for c in range(3)]
    )
    assert [b["epochs"] for b in fid["budgets"]] == [1, 2]
    assert fid["budgets"][-1]["tau_vs_longest"] == pytest.approx(1.0)  # the longest against itself
    assert fid["chosen_budget"] in (1, 2) and fid["seed"]["cells"] == 3
    assert_drawn(out / "fidelity.png")
    for d in (out / "train").iterdir():  # the test split is never read: no figure, nothing in the model file
        result = json.loads((d / "result.json").read_text())
        assert result["test_accuracy"] is None and result["test_images"] == 0
        assert "test" not in load_checkpoint(d / "best.pt")
        assert json.loads((d / "config.json").read_text())["epochs"] in (1, 2)


def test_calibration_again_trains_nothing_and_other_settings_are_refused(calibration, capsys):
    out, args = calibration
    before = {p: p.stat().st_mtime_ns for p in (out / "train").glob("*/result.json")}
    assert main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "train").glob("*/result.json")} == before
    assert main([*args, "--budgets", "1,3"]) == 2
    assert "other settings (budgets)" in capsys.readouterr().err


def test_summary_only_reads_the_finished_trainings_and_trains_nothing(calibration, tmp_path, capsys):
    import shutil

    out, args = calibration
    look = tmp_path / "look"
    shutil.copytree(out, look)
    rows = load_fidelity(look)["rows"]
    gone = next(r for r in rows if r["cell"] == 1 and r["budget_epochs"] == 1)  # a training not finished yet
    shutil.rmtree(look / gone["train_run"])
    for f in ("fidelity.json", "fidelity.png"):
        (look / f).unlink()
    argv = [a if a != str(out) else str(look) for a in args]
    assert main([*argv, "--summary-only"]) == 0
    assert "(8 of 9 trainings)" in capsys.readouterr().out
    assert not (look / gone["train_run"]).exists()  # nothing trained
    fid = load_fidelity(look)
    assert len(fid["rows"]) == 8 and not fid["complete"] and fid["chosen_budget"] is None
    assert (1, 1) not in {(r["cell"], r["budget_epochs"]) for r in fid["rows"]}
    assert_drawn(look / "fidelity.png")
    complete = load_fidelity(out)  # a worker finished the last training while the look read the others
    shutil.copytree(out / gone["train_run"], look / gone["train_run"])
    (look / "fidelity.json").write_text(json.dumps(complete))
    assert main([*argv, "--summary-only"]) == 0
    assert load_fidelity(look)["chosen_budget"] == complete["chosen_budget"] is not None  # not replaced
    empty = [a if a != str(out) else str(tmp_path / "none") for a in args]
    assert main([*empty, "--summary-only"]) == 2
    assert "holds no calibration" in capsys.readouterr().err and not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(budgets=(8,)), "at least two"),
        (dict(cells=2), "between 3 and 10,000 cells"),
        (dict(seed_cells=5, cells=4), "seed cells"),
        (dict(seed_budget=12), "one of the budgets"),
        (dict(train={"epochs": 3}), "from --budgets"),
    ],
)
def test_impossible_calibrations_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        FidelityConfig(**values)


def test_fidelity_cli_bad_budgets_is_one_line(tmp_path, capsys):
    assert main(["fidelity", "--out", str(tmp_path / "f"), "--budgets", "8,x"]) == 2
    assert "--budgets wants epoch counts" in capsys.readouterr().err


def test_fidelity_library_call(idx_dir, tmp_path, monkeypatch):
    import pcdarts.experiments.fidelity as fidelity

    real = fidelity.run_units  # stopped after two units, as a killed calibration would be
    monkeypatch.setattr(fidelity, "run_units", lambda units, record, **kw: real(units[:2], record, **kw))
    cfg = FidelityConfig(dataset="fashion-mnist", data=str(idx_dir), cells=3, budgets=(1, 2), seed_cells=0, train=TRAIN)
    summary = run_fidelity(cfg, tmp_path / "f", progress=False, threads=1)
    assert summary["units_done"] == 2 and not summary["complete"] and summary["chosen_budget"] is None


@pytest.mark.parametrize("key", ["genotype=DARTS_V2", "dataset=digits", "data=/tmp"])
def test_fidelity_refuses_training_settings_it_sets_itself(tmp_path, capsys, key):
    assert main(["fidelity", "--dataset", "synthetic", "--train-set", key, "--out", str(tmp_path / "f")]) == 2
    assert "is not a training setting of a calibration" in one_line(capsys)
    assert not (tmp_path / "f").exists()


def test_a_calibration_of_nasbench201_cells_selects_on_the_holdout(idx_dir, tmp_path, capsys):
    """The cell space of the random cells, and model selection on a fixed hold-out instead of a val split."""
    from pcdarts.nas.nb201 import random_nb201

    out = tmp_path / "f"
    args = ["fidelity", "--dataset", "fashion-mnist", "--data", str(idx_dir), "--out", str(out), "--cells", "3",
            "--budgets", "1,2", "--seed-cells", "0", "--cell", "nasbench201", "--threads", "1",
            "--no-progress"]  # fmt: skip
    train = dict(TRAIN, val_fraction=0.0)
    for k, v in train.items():
        args += ["--train-set", f"{k}={json.dumps(v)}"]
    assert main(args) == 2  # no validation data to rank the cells on: refused before any training
    assert "holdout_images" in one_line(capsys) and not (out / "train").exists()
    assert main([*args, "--train-set", "holdout_images=40"]) == 0
    fid = load_fidelity(out)
    assert fid["complete"] and len(fid["rows"]) == 6
    trained = [json.loads((d / "result.json").read_text()) for d in (out / "train").iterdir()]
    assert len(trained) == 6 and all(r["selected_by"] == "holdout" and r["test_accuracy"] is None for r in trained)
    genotypes = {json.dumps(json.loads((d / "genotype.json").read_text())) for d in (out / "train").iterdir()}
    assert genotypes == {json.dumps(random_nb201(c).to_dict()) for c in range(3)}


def test_fidelity_json_keeps_the_trainings_another_process_wrote(tmp_path):
    """Two processes share a calibration: each rewrites fidelity.json with its own trainings and those the other
    listed for the same settings, so it is complete, with its chosen budget, once every training is."""
    from pcdarts.experiments.fidelity import Fidelity

    cfg = FidelityConfig(dataset="synthetic", cells=3, budgets=(1, 2), seed_cells=1, train={"val_fraction": 0.2})
    fid = Fidelity(cfg, tmp_path)
    rows = []
    for i, (c, b, s) in enumerate(fid.keys()):
        run = tmp_path / "train" / f"r{i}"
        run.mkdir(parents=True)
        (run / "result.json").write_text("{}")
        rows.append({"cell": c, "budget_epochs": b, "train_seed": s, "val_accuracy": 0.5 + c / 10 + b / 100,
                     "selected_epoch": b, "params": 1000, "param_free_normal": 0, "param_free_reduce": 0,
                     "train_seconds": 1.0, "train_run": f"train/r{i}"})  # fmt: skip
    theirs, mine = rows[::2], rows[1::2]
    (tmp_path / "fidelity.json").write_text(json.dumps({"config": cfg.to_dict(), "rows": theirs}))
    fid.rows = mine
    written = fid.write()
    assert written["rows"] == rows and written["complete"] and written["chosen_budget"] == 1
    assert json.loads((tmp_path / "fidelity.json").read_text())["rows"] == rows
    (tmp_path / rows[0]["train_run"] / "result.json").unlink()  # deleted to be redone: not carried forward
    other = {**cfg.to_dict(), "cells": 4}  # a list of other settings contributes nothing
    for listed in ({"config": cfg.to_dict(), "rows": theirs}, {"config": other, "rows": theirs}, {"rows": 5}):
        (tmp_path / "fidelity.json").write_text(json.dumps(listed))
        fid.rows = mine
        got = fid.write()["rows"]
        assert got == (rows[1:] if listed["rows"] == theirs and listed["config"] == cfg.to_dict() else mine)
        assert not fid.write()["complete"]
