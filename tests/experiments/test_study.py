"""`pcdarts study`: arms, shared searches, random cells, the table, and resumption after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pcdarts.cli import main
from pcdarts.errors import ConfigError
from pcdarts.experiments.fidelity import load_fidelity
from pcdarts.experiments.stats import summarise_arms
from pcdarts.experiments.study import Arm, StudyConfig, run_study
from pcdarts.experiments.tables import format_table, verdict
from pcdarts.files import load_checkpoint
from pcdarts.runs.rundir import RunBusy
from tests.conftest import one_line
from tests.pictures import assert_drawn
from tests.tiny import CALIBRATION_TRAIN, STUDY_SEARCH, study_args
from tests.tiny import STUDY_TRAIN as TRAIN


@pytest.mark.slow
def test_study_writes_every_cell_and_shares_searches(finished_study, capsys):
    study = json.loads((finished_study / "study.json").read_text())
    assert study["complete"]
    cells = study["cells"]
    assert [(c["arm"], c["kind"], c["seed"]) for c in cells] == [
        ("pcdarts", "searched", 0),
        ("cap1", "searched", 0),
        ("bd", "searched", 0),
        ("random", "random", 0),
        ("random", "random", 1),
    ]
    for c in cells:
        assert 0.0 <= c["test_accuracy"] <= 1.0 and c["params"] > 0 and c["macs"] > 0
        assert {"genotype", "param_free_normal", "search_seconds", "train_seconds"} <= set(c)
        assert c["train_cpu_seconds"] > 0 and (c["kind"] == "random" or c["search_cpu_seconds"] > 0)
        if c["kind"] == "searched":  # no arm here stops early or selects by perturbation: it read the whole search
            assert "search_revision" in c and "select_revision" not in c
            assert c["search_run_seconds"] == c["search_seconds"] > 0
            assert c["search_run_cpu_seconds"] == c["search_cpu_seconds"] > 0
    by_arm = {c["arm"]: c for c in cells}
    assert by_arm["cap1"]["param_free_normal"] <= 1
    assert by_arm["cap1"]["search_run"] == by_arm["pcdarts"]["search_run"]  # the cap needs no search of its own
    assert by_arm["bd"]["search_run"] != by_arm["pcdarts"]["search_run"]
    assert len(list((finished_study / "search").iterdir())) == 2
    assert_drawn(finished_study / "study.png")
    rows = {r["arm"]: r for r in study["arms"]}
    assert rows["random"]["n"] == 2 and rows["pcdarts"]["n"] == 1
    assert "| random | 2 |" in format_table(study["arms"])
    assert main(["report", str(finished_study)]) == 0
    page = (finished_study / "report.html").read_text()
    assert "pcdarts study: fashion-mnist" in page and "data:image/png;base64," in page and page.count("<tr>") >= 10
    # every cell's training selected on validation data and read the test split for one figure
    res = json.loads((finished_study / cells[0]["train_run"] / "result.json").read_text())
    assert res["selected_by"] == "val" and res["val_images"] > 0
    metrics = (finished_study / cells[0]["train_run"] / "metrics.jsonl").read_text()
    assert "test" not in metrics


@pytest.mark.slow
def test_running_the_same_study_again_redoes_nothing(finished_study, idx_dir, capsys):
    results = sorted(finished_study.glob("*/*/result.json")) + sorted(finished_study.glob("*/*/genotype.json"))
    stamps = {p: p.stat().st_mtime_ns for p in results}
    t0 = time.time()
    assert main(study_args(idx_dir, finished_study)) == 0
    assert time.time() - t0 < 30
    assert {p: p.stat().st_mtime_ns for p in results} == stamps
    assert "| random | 2 |" in capsys.readouterr().out  # the table is printed from the stored cells


def test_a_study_with_other_settings_is_refused(finished_study, idx_dir, capsys):
    args = study_args(idx_dir, finished_study)
    args[args.index("--random") + 1] = "3"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "other settings (random_cells)" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_sigkill_at_any_point_then_rerun_gives_the_uninterrupted_study(finished_study, idx_dir, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "pcdarts", *study_args(idx_dir, out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for wait_cells in (1, 3):  # kill twice: inside the first round and later
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                if len(json.loads((out / "study.json").read_text())["cells"]) >= wait_cells:
                    break
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                pass
            time.sleep(0.2)
        time.sleep(1.0)  # let it get into the middle of the next sub-run
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    got = json.loads((out / "study.json").read_text())
    want = json.loads((finished_study / "study.json").read_text())
    key = lambda c: (c["arm"], c["seed"], json.dumps(c["genotype"]), c["test_accuracy"], c["params"])  # noqa: E731
    assert [key(c) for c in got["cells"]] == [key(c) for c in want["cells"]]


def test_arm_parsing_and_verdict():
    arm = Arm.parse("cap2:max_param_free=2,edge_norm=false")
    assert arm == Arm("cap2", {"max_param_free": 2, "edge_norm": False})
    with pytest.raises(ValueError):
        StudyConfig(arms=(Arm("a"), Arm("a")))
    cells = [
        {"arm": "s", "kind": "searched", "test_accuracy": a, "params": 1, "param_free_normal": 0, "train_seconds": 1.0}
        for a in (0.90, 0.92)
    ]
    cells += [
        {
            "arm": "random",
            "kind": "random",
            "test_accuracy": a,
            "params": 1,
            "param_free_normal": 3,
            "train_seconds": 1.0,
        }
        for a in (0.85, 0.87, 0.86)
    ]
    assert "beats random by more than the random spread" in verdict(summarise_arms(cells))
    assert "not enough" in verdict(summarise_arms(cells[:2]))


def test_run_study_library_call_matches_the_cli(idx_dir, tmp_path):
    cfg = StudyConfig(dataset="fashion-mnist", data=str(idx_dir), arms=(), searches=0, random_cells=1, train=TRAIN)
    summary = run_study(cfg, tmp_path / "lib", progress=False, threads=1)
    assert [c["kind"] for c in summary["cells"]] == ["random"] and summary["complete"]


def test_a_refused_start_pins_nothing(idx_dir, tmp_path, capsys):
    out = tmp_path / "s"
    args = ["study", "--dataset", "fashion-mnist", "--data", str(idx_dir), "--out", str(out), "--searches", "1",
            "--random", "0", "--search-set", "nosuch=1"]  # fmt: skip
    assert main(args) == 2
    assert "unknown search settings: nosuch" in capsys.readouterr().err
    assert not out.exists()  # so the corrected command is not refused as "other settings"


def test_a_finished_sub_run_made_with_other_settings_is_not_reused(tmp_path):
    """Reusing a finished search or training is only right when it was made with the settings asked for."""
    from dataclasses import asdict, replace

    from pcdarts.errors import RunError
    from pcdarts.experiments.units import check_reused
    from pcdarts.runs.config import SearchConfig

    cfg = SearchConfig.for_dataset("digits", epochs=2)
    run = tmp_path / "s1"
    run.mkdir()
    saved = asdict(cfg)
    del saved["recompute"]  # written before the setting existed: counts as its default
    (run / "config.json").write_text(json.dumps({**saved, "threads": 7, "device": "cuda"}))  # free to differ
    check_reused(run, cfg)
    with pytest.raises(RunError, match="lr=") as err:
        check_reused(run, replace(cfg, lr=0.5))
    assert "delete that folder" in str(err.value) and len(str(err.value).splitlines()) == 1
    (run / "config.json").write_text("{not json")
    with pytest.raises(RunError, match="unreadable"):
        check_reused(run, cfg)


def test_study_and_fidelity_sizes_are_bounded(tmp_path, capsys):
    assert main(["study", "--random", "100000000", "--searches", "0", "--out", str(tmp_path / "s"),
                 "--print-config"]) == 2  # fmt: skip
    assert "between 0 and 10,000" in one_line(capsys)
    assert main(["fidelity", "--cells", "100000000", "--out", str(tmp_path / "f")]) == 2
    assert "between 3 and 10,000 cells" in one_line(capsys)
    assert main(["study", "--train-set", "seed=3", "--out", str(tmp_path / "s2")]) == 2
    assert "set by the study itself" in one_line(capsys)


def test_a_one_cell_arm_shows_no_spread():
    row = dict(arm="a", kind="searched", n=1, mean=0.3333, std=0.0, min=0.3333, max=0.3333, params=10,
               param_free_normal=2.0)  # fmt: skip
    assert "n/a (one cell)" in format_table([row]) and "± 0.00" not in format_table([row])
    assert "± 1.00 %" in format_table([{**row, "n": 2, "std": 0.01}])


def test_a_study_in_the_folder_reuses_a_budget_as_its_random_arm_and_reads_test_once(calibration, idx_dir, tmp_path):
    import shutil

    out = tmp_path / "calibration"  # a copy: the calibration is shared (conftest), and this study writes into it
    shutil.copytree(calibration[0], out)
    trained = sorted(p.name for p in (out / "train").iterdir())
    cfg = StudyConfig(dataset="fashion-mnist", data=str(idx_dir), arms=(), searches=0, random_cells=3,
                      train={**CALIBRATION_TRAIN, "epochs": 2})  # fmt: skip
    summary = run_study(cfg, out, progress=False, threads=1)
    assert sorted(p.name for p in (out / "train").iterdir()) == trained  # nothing trained again
    assert [c["budget_epochs"] for c in summary["cells"]] == [2, 2, 2]
    fid = {(r["cell"], r["train_seed"]): r for r in load_fidelity(out)["rows"] if r["budget_epochs"] == 2}
    for c in summary["cells"]:
        assert 0.0 <= c["test_accuracy"] <= 1.0 and c["val_accuracy"] == fid[c["seed"], 0]["val_accuracy"]
        assert "test" in load_checkpoint(out / c["train_run"] / "best.pt")
        assert c["revision"] is None or len(c["revision"]) >= 40


def test_a_study_takes_its_budget_from_the_calibration(calibration, idx_dir, tmp_path, capsys):
    import shutil

    calib, _ = calibration
    chosen = json.loads((calib / "fidelity.json").read_text())["chosen_budget"]
    out = tmp_path / "study"  # a copy of the calibration folder, without any study run in it
    shutil.copytree(calib, out, ignore=shutil.ignore_patterns("study*"))
    args = ["study", "--out", str(out), "--budget-from", str(calib), "--dataset", "fashion-mnist", "--data",
            str(idx_dir), "--searches", "0", "--random", "3", "--threads", "1", "--no-progress"]  # fmt: skip
    for k, v in CALIBRATION_TRAIN.items():
        args += ["--train-set", f"{k}={json.dumps(v)}"]
    trained = sorted(p.name for p in (out / "train").iterdir())
    assert main(args) == 0
    study = json.loads((out / "study.json").read_text())
    assert {c["budget_epochs"] for c in study["cells"]} == {chosen} and len(study["cells"]) == 3
    assert sorted(p.name for p in (out / "train").iterdir()) == trained  # the calibration's trainings, reused


def test_a_study_budget_is_refused_from_a_calibration_with_other_settings(calibration, tmp_path, capsys):
    out, _ = calibration
    base = ["study", "--out", str(tmp_path / "s"), "--searches", "0", "--random", "1", "--no-progress"]
    assert main([*base, "--budget-from", str(out), "--train-set", "layers=4"]) == 2
    assert "other training settings" in capsys.readouterr().err
    assert main([*base, "--budget-from", str(tmp_path)]) == 2
    assert "no fidelity.json" in capsys.readouterr().err
    fid = json.loads((out / "fidelity.json").read_text())
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "fidelity.json").write_text(json.dumps({**fid, "chosen_budget": None}))
    assert main([*base, "--budget-from", str(unfinished), "--train-set", "layers=4"]) == 2
    assert "other training settings" in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_study_print_config_shows_the_plan_and_writes_nothing(calibration, idx_dir, tmp_path, capsys):
    """`pcdarts study --print-config`: every arm's search and selection, the training, the units; no folder.
    Before the calibration has chosen its budget the epochs say so; mismatched settings are still refused."""
    calib, _ = calibration
    unfinished = tmp_path / "calib"
    unfinished.mkdir()
    fid = json.loads((calib / "fidelity.json").read_text())
    (unfinished / "fidelity.json").write_text(json.dumps({**fid, "chosen_budget": None}))
    out = tmp_path / "study"
    args = ["study", "--out", str(out), "--dataset", "fashion-mnist", "--data", str(idx_dir), "--searches", "2",
            "--random", "3", "--arm", "cap2:max_param_free=2",
            "--arm", "pt:select=pt,select_tune_epochs=0.2"]  # fmt: skip
    for k, v in CALIBRATION_TRAIN.items():
        args += ["--train-set", f"{k}={json.dumps(v)}"]
    args = [*args, "--print-config"]
    assert main([*args, "--budget-from", str(unfinished)]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert not out.exists()
    assert plan["arms"]["cap2"]["search"]["max_param_free"] == 2 and plan["arms"]["cap2"]["select"] is None
    assert plan["arms"]["pt"]["select"]["method"] == "pt" and plan["arms"]["pt"]["search"]["seed"] == "0..1"
    assert plan["train"]["epochs"].startswith("not chosen yet")
    assert plan["units"] == ["cap2 seed 0", "pt seed 0", "random seed 0", "cap2 seed 1", "pt seed 1", "random seed 1",
                             "random seed 2"]  # fmt: skip
    assert main([*args, "--budget-from", str(calib), "--threads", "1"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["train"]["epochs"] == fid["chosen_budget"]
    assert (
        plan["train"]["threads"]
        == plan["arms"]["pt"]["search"]["threads"]
        == plan["arms"]["pt"]["select"]["threads"]
        == 1
    )
    assert main([*args, "--budget-from", str(unfinished), "--train-set", "lr=0.5"]) == 2
    assert "other training settings" in capsys.readouterr().err


PENDING_SEARCH = {k: v for k, v in STUDY_SEARCH.items() if k != "lr"}  # lr: the search's own default


PT = "pt:select=pt,select_tune_epochs=0.2,select_score_batches=2"


def test_a_study_searches_while_its_calibration_runs_and_trains_once_the_budget_is_chosen(
    calibration, idx_dir, tmp_path, capsys, monkeypatch
):
    """Searches and selections do not depend on the training budget: they run before the calibration is
    finished, no cell is trained, no test split read and no epochs pinned until the budget is chosen, and a
    run that sees the budget arrive carries on with the trainings (the calibration's own trainings reused)."""
    import shutil

    import pcdarts.experiments.study as study_mod
    from pcdarts.experiments.study import Arm

    selected = []  # the perturbation-based selection itself is tested in test_select.py; here, when it runs

    def select(run, out, cfg, progress=True):
        selected.append(out)
        genotype = json.loads((run / "genotype.json").read_text())
        return {"genotype": genotype, "label": cfg.label(), "seconds": 1.0, "cpu_seconds": 1.0}

    monkeypatch.setattr(study_mod, "run_select", select)
    calib, _ = calibration
    fid = json.loads((calib / "fidelity.json").read_text())
    chosen = fid["chosen_budget"]
    out = tmp_path / "study"  # the study in its calibration's folder, as Study II runs
    shutil.copytree(calib, out, ignore=shutil.ignore_patterns("study*"))
    (out / "fidelity.json").write_text(json.dumps({**fid, "chosen_budget": None}))
    args = ["study", "--out", str(out), "--budget-from", str(out), "--dataset", "fashion-mnist", "--data",
            str(idx_dir), "--searches", "1", "--random", "2", "--arm", "pcdarts", "--arm", PT, "--threads", "1",
            "--no-progress"]  # fmt: skip
    for k, v in PENDING_SEARCH.items():
        args += ["--search-set", f"{k}={v}"]
    for k, v in CALIBRATION_TRAIN.items():
        args += ["--train-set", f"{k}={json.dumps(v)}"]
    calibrated = {p: p.stat().st_mtime_ns for p in (out / "train").glob("*/*")}
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "has not chosen the training budget yet" in said and "the 4 cells' trainings wait" in said
    (search,) = (out / "search").iterdir()
    assert (search / "genotype.json").is_file() and [p.parent for p in selected] == [search]
    assert {p: p.stat().st_mtime_ns for p in (out / "train").glob("*/*")} == calibrated  # untouched: no test read
    assert not (out / "study.json").exists() and not (out / "study_config.json").exists()
    assert "epochs" not in json.loads((out / "study_config_searches.json").read_text())["train"]
    searched_at = (search / "search_result.json").stat().st_mtime_ns
    other = [a if a != "warmup_epochs=1" else "warmup_epochs=0" for a in args]  # another search, same folder
    assert main(other) == 2
    assert "other settings (search)" in capsys.readouterr().err

    # The budget arrives while a run is under way: the units that waited are taken up again in the same run.
    answers = iter([None])
    cfg = StudyConfig(dataset="fashion-mnist", data=str(idx_dir), arms=(Arm("pcdarts"), Arm.parse(PT)), searches=1,
                      random_cells=2, search=PENDING_SEARCH, train=dict(CALIBRATION_TRAIN))  # fmt: skip
    summary = run_study(cfg, out, progress=False, threads=1, budget=lambda: next(answers, chosen))
    assert summary["complete"] and [c["arm"] for c in summary["cells"]] == ["pcdarts", "pt", "random", "random"]
    assert {c["budget_epochs"] for c in summary["cells"]} == {chosen}
    searched_by = json.loads((search / "environment.json").read_text())["git"]
    assert [c["search_revision"] for c in summary["cells"][:2]] == [searched_by] * 2  # each part's code named
    assert summary["cells"][1]["select_revision"] is None  # the stand-in selection above names none
    assert (search / "search_result.json").stat().st_mtime_ns == searched_at  # the search was not run again
    new = sorted({p.name for p in (out / "train").iterdir()} - {p.parent.name for p in calibrated})
    assert 1 <= len(new) <= 2 and all(n.endswith(f"-e{chosen}-t0") for n in new)  # searched cells; random reused
    assert json.loads((out / "study_config.json").read_text())["train"]["epochs"] == chosen

    (out / "fidelity.json").write_text(json.dumps(fid))  # finished: the same command reads everything back
    assert main(args) == 0
    assert "random" in capsys.readouterr().out and json.loads((out / "study.json").read_text())["complete"]
    assert sorted({p.name for p in (out / "train").iterdir()} - {p.parent.name for p in calibrated}) == new


def test_a_busy_pin_leaves_the_budget_to_be_read_again(calibration, idx_dir, tmp_path, monkeypatch):
    """The folder is pinned to the budget before the study uses it: a pin that cannot be taken now (another
    process holds the folder) is tried again, and the study never trains unpinned."""
    import pcdarts.experiments.study as study_mod

    calib, _ = calibration
    chosen = json.loads((calib / "fidelity.json").read_text())["chosen_budget"]
    real, calls = study_mod.check_pinned, []

    def busy_once(out, name, mine, what):
        calls.append(name)
        if len(calls) == 1:
            raise RunBusy("held elsewhere")
        return real(out, name, mine, what)

    monkeypatch.setattr(study_mod, "check_pinned", busy_once)
    monkeypatch.setattr(study_mod.time, "sleep", lambda s: None)
    out = tmp_path / "s"
    cfg = StudyConfig(
        dataset="fashion-mnist", data=str(idx_dir), searches=0, random_cells=1, train=dict(CALIBRATION_TRAIN)
    )
    monkeypatch.setattr(study_mod.Study, "_check_folder_pending", lambda self: None)  # only the budget's pin here
    summary = run_study(cfg, out, progress=False, threads=1, budget=lambda: chosen)
    assert summary["complete"] and calls == ["study_config.json", "study_config.json"]
    assert json.loads((out / "study_config.json").read_text())["train"]["epochs"] == chosen


def test_the_study2_preset_needs_its_calibration_for_the_epochs(tmp_path, capsys):
    """Study II's preset has no training epochs of its own: without --budget-from (or explicit epochs) a run
    would silently train at the dataset's default, so it is refused in one line."""
    base = ["study", "--preset", "fmnist-study2", "--out", str(tmp_path / "s"), "--print-config"]
    for more in ([], ["--train-set", "epochs=null"]):
        assert main([*base, *more]) == 2
        assert "takes its training epochs from its calibration: add --budget-from" in capsys.readouterr().err
    assert main([*base, "--train-set", "epochs=4"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["train"]["epochs"] == 4 and plan["study"]["primary"] == "cap2" and len(plan["units"]) == 30
    assert not (tmp_path / "s").exists()


def test_a_study_refuses_a_holdout_its_searches_trained_on():
    """Found when the study is set up, not after its searches ran."""
    from pcdarts.errors import ConfigError

    with pytest.raises(ConfigError, match="holdout_images=10000"):
        StudyConfig(arms=(Arm("a"),), train={"holdout_images": 10000})
    with pytest.raises(ConfigError, match="arm 'b'"):
        StudyConfig(arms=(Arm("a"), Arm("b", {"holdout_images": 0})), search={"holdout_images": 40},
                    train={"holdout_images": 40})  # fmt: skip
    assert StudyConfig(arms=(Arm("a"),), search={"holdout_images": 40}, train={"holdout_images": 40}).arms
    assert StudyConfig(arms=(), searches=0, random_cells=1, train={"holdout_images": 40}).train  # no searches


def test_study_json_keeps_the_units_another_process_wrote(tmp_path):
    """Two processes share a study folder: each rewrites study.json with its own units and those the other
    already listed for the same settings, in plan order. A listed unit whose training or search a user deleted
    is not carried forward, a damaged or foreign list is replaced, and the list says complete once it is."""
    from pcdarts.experiments.study import Study
    from tests.tiny import analysis_study

    made = analysis_study(tmp_path)["cells"]
    arms = (Arm("pcdarts", {"k": 4}), Arm("darts", {"k": 1}))
    cfg = StudyConfig(dataset="synthetic", arms=arms, searches=2, random_cells=10, retrain_random=2)
    study = Study(cfg, tmp_path)
    for i, c in enumerate(made):
        (tmp_path / c["train_run"]).mkdir(parents=True)
        (tmp_path / c["train_run"] / "result.json").write_text("{}")
        if c["kind"] == "searched":
            c["search_run"] = f"search/{i}"
            (tmp_path / c["search_run"]).mkdir(parents=True)
            (tmp_path / c["search_run"] / "genotype.json").write_text("{}")
    key = lambda c: (c["arm"], c["seed"])  # noqa: E731
    order = {k: i for i, k in enumerate(study.unit_keys())}

    def listed(theirs, mine, config=cfg.to_dict()):
        (tmp_path / "study.json").write_text(json.dumps({"config": config, "cells": theirs}))
        study.cells = mine
        study.write()
        return json.loads((tmp_path / "study.json").read_text())

    theirs = [c for c in made if c["arm"] in ("random", "pcdarts")]
    mine = [c for c in made if c["arm"] in ("darts", "random-retrain")]
    only_mine = sorted(map(key, mine), key=order.get)
    written = listed(theirs, mine)
    assert [key(c) for c in written["cells"]] == sorted(map(key, made), key=order.get) and written["complete"]
    assert {r["arm"]: r["n"] for r in written["arms"]} == {"pcdarts": 2, "darts": 2, "random": 10, "random-retrain": 2}
    (tmp_path / theirs[3]["train_run"] / "result.json").unlink()  # random seed 3: its training deleted, to be redone
    (tmp_path / "search" / f"{made.index(theirs[-1])}" / "genotype.json").unlink()  # pcdarts seed 1: its search
    written = listed(theirs, mine)
    gone = {("random", 3), ("pcdarts", 1)}
    assert [key(c) for c in written["cells"]] == sorted((key(c) for c in made if key(c) not in gone), key=order.get)
    assert not written["complete"]
    for damaged in (5, [5, {"arm": ["random"], "seed": 0}, {**theirs[0], "seed": True}, {**theirs[0], "kind": "x"}]):
        assert [key(c) for c in listed(damaged, mine)["cells"]] == only_mine
    other = {**cfg.to_dict(), "random_cells": 11}  # a list written for other settings is not carried forward
    assert [key(c) for c in listed(theirs, mine, other)["cells"]] == only_mine
    (tmp_path / "study.json").write_text("{not json")
    study.cells = mine
    assert [key(c) for c in study.write()["cells"]] == only_mine
    assert study.unit_keys()[:4] == [("pcdarts", 0), ("darts", 0), ("random", 0), ("random-retrain", 0)]
    assert [name for name, _ in study.plan()][:4] == [
        "pcdarts seed 0", "darts seed 0", "random seed 0", "random seed 0, training seed +1"]  # fmt: skip
    with pytest.raises(ConfigError, match="random-retrain"):
        StudyConfig(dataset="synthetic", arms=(Arm("random-retrain"),))
