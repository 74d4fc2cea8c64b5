"""`pcdarts fidelity`: budgets, tau, validation only, resumption, reuse by a study; shared units; layouts."""

import json
import math
import random

import pytest
import torch
from scipy.stats import kendalltau

from pcdarts.cli import main
from pcdarts.experiments.fidelity import FidelityConfig, load_fidelity, run_fidelity
from pcdarts.experiments.stats import bootstrap_tau, kendall_tau
from pcdarts.experiments.study import StudyConfig, run_study
from pcdarts.experiments.units import run_units
from pcdarts.files import load_checkpoint
from pcdarts.nas.genotype import random_genotype
from pcdarts.nas.network import build_network
from pcdarts.runs.engine import train_step
from pcdarts.runs.rundir import RunBusy, RunLock
from tests.conftest import one_line
from tests.idx_data import write_idx
from tests.pictures import assert_drawn
from tests.tiny import STUDY_SEARCH, STUDY_TRAIN

TRAIN = {k: v for k, v in STUDY_TRAIN.items() if k != "epochs"}  # a calibration's epochs are its budgets


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    return write_idx(tmp_path_factory.mktemp("idx"))


@pytest.fixture(scope="module")
def calibration(idx_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("fid") / "f"
    args = ["fidelity", "--dataset", "fashion-mnist", "--data", str(idx_dir), "--out", str(out), "--cells", "3",
            "--budgets", "1,2", "--seed-cells", "3", "--threads", "1", "--no-progress"]  # fmt: skip
    for k, v in TRAIN.items():
        args += ["--train-set", f"{k}={json.dumps(v)}"]
    assert main(args) == 0
    return out, args


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
    (look / "fidelity.json").write_text(json.dumps(complete))
    assert main([*argv, "--summary-only"]) == 0
    assert load_fidelity(look)["chosen_budget"] == complete["chosen_budget"] is not None  # not replaced
    empty = [a if a != str(out) else str(tmp_path / "none") for a in args]
    assert main([*empty, "--summary-only"]) == 2
    assert "holds no calibration" in capsys.readouterr().err and not (tmp_path / "none").exists()


def test_a_study_in_the_folder_reuses_a_budget_as_its_random_arm_and_reads_test_once(calibration, idx_dir):
    out, _ = calibration
    trained = sorted(p.name for p in (out / "train").iterdir())
    cfg = StudyConfig(dataset="fashion-mnist", data=str(idx_dir), arms=(), searches=0, random_cells=3,
                      train={**TRAIN, "epochs": 2})  # fmt: skip
    summary = run_study(cfg, out, progress=False, threads=1)
    assert sorted(p.name for p in (out / "train").iterdir()) == trained  # nothing trained again
    assert [c["budget_epochs"] for c in summary["cells"]] == [2, 2, 2]
    fid = {(r["cell"], r["train_seed"]): r for r in load_fidelity(out)["rows"] if r["budget_epochs"] == 2}
    for c in summary["cells"]:
        assert 0.0 <= c["test_accuracy"] <= 1.0 and c["val_accuracy"] == fid[c["seed"], 0]["val_accuracy"]
        assert "test" in load_checkpoint(out / c["train_run"] / "best.pt")
        assert c["revision"] is None or len(c["revision"]) >= 40


def test_kendall_tau_matches_scipy_and_the_bootstrap_brackets_it():
    rng = random.Random(1)
    for n in (3, 5, 12):
        x = [rng.random() for _ in range(n)]
        y = [v + rng.gauss(0, 0.3) for v in x]
        y[0] = y[1]  # a tie
        assert kendall_tau(x, y) == pytest.approx(kendalltau(x, y).statistic)
    x = list(range(12))
    y = [v + rng.gauss(0, 2) for v in x]
    lo, hi = bootstrap_tau(x, y)
    assert lo <= kendall_tau(x, y) <= hi and -1 <= lo < hi <= 1
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


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


def test_units_held_by_another_process_are_taken_up_when_free(tmp_path):
    order = []
    calls = {"busy": 0}

    def busy_once():
        calls["busy"] += 1
        if calls["busy"] == 1:
            raise RunBusy("held elsewhere")
        return {"unit": "b"}

    units = [("a", lambda: {"unit": "a"}), ("b", busy_once), ("c", lambda: {"unit": "c"})]
    run_units(units, lambda i, cell: order.append((i, cell["unit"])), poll_seconds=0)
    assert order == [(0, "a"), (2, "c"), (1, "b")]


def test_units_waiting_for_the_budget_are_retried_after_progress_and_returned_when_nothing_else_is_left(monkeypatch):
    import pcdarts.experiments.study as study_mod
    from pcdarts.experiments.units import BudgetPending

    sleeps = []
    monkeypatch.setattr(study_mod.time, "sleep", sleeps.append)

    known, order, calls = {"budget": False}, [], {"b": 0}

    def needs_budget():
        if not known["budget"]:
            raise BudgetPending("waits")
        return {"unit": "a"}

    def busy_once():
        calls["b"] += 1
        if calls["b"] == 1:
            raise RunBusy("held elsewhere")
        return {"unit": "b"}

    def record(i, cell):
        order.append((i, cell["unit"]))

    def chooses():  # the calibration finishes while this unit runs
        known["budget"] = True
        return {"unit": "c"}

    assert run_units([("a", needs_budget), ("c", chooses)], record, poll_seconds=7) == []
    assert order == [(1, "c"), (0, "a")] and sleeps == []  # taken up again at once after progress
    known["budget"], order[:] = False, []
    assert run_units([("a", needs_budget), ("b", busy_once)], record, poll_seconds=7) == [0]
    assert order == [(1, "b")] and sleeps == [7]  # waited once for the busy unit, then returned the waiting one


def test_a_second_lock_on_a_folder_is_refused_until_the_first_is_released(tmp_path):
    with RunLock(tmp_path / "r"):
        with pytest.raises(RunBusy, match="in use by process"):
            RunLock(tmp_path / "r").__enter__()
    with RunLock(tmp_path / "r"):  # released: free again
        pass


def test_fidelity_library_call(idx_dir, tmp_path, monkeypatch):
    import pcdarts.experiments.fidelity as fidelity

    real = fidelity.run_units  # stopped after two units, as a killed calibration would be
    monkeypatch.setattr(fidelity, "run_units", lambda units, record, **kw: real(units[:2], record, **kw))
    cfg = FidelityConfig(dataset="fashion-mnist", data=str(idx_dir), cells=3, budgets=(1, 2), seed_cells=0, train=TRAIN)
    summary = run_fidelity(cfg, tmp_path / "f", progress=False, threads=1)
    assert summary["units_done"] == 2 and not summary["complete"] and summary["chosen_budget"] is None


@pytest.mark.parametrize("aux", [False, True])
def test_channels_last_training_equals_the_contiguous_one_in_float64(aux):
    """The layout changes speed only: one training step from one seed gives the same logits, weights and stats."""
    genotype = random_genotype(3)
    results = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        torch.manual_seed(0)
        net = build_network(genotype, num_classes=10, in_channels=1, init_channels=8, layers=5, auxiliary=aux)
        net = net.double().set_memory_format(fmt)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4, foreach=True)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(6, 1, 16, 16, generator=g, dtype=torch.float64)
        y = torch.randint(0, 10, (6,), generator=g)
        train_step(net, opt, list(net.parameters()), x, y, grad_clip=5.0, auxiliary_weight=0.4 if aux else 0.0)
        net.eval()
        results.append((net(x), net.state_dict()))
    (a, sa), (b, sb) = results
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-10, atol=1e-10)
    assert sb["stem0.0.weight"].is_contiguous(memory_format=torch.channels_last)


def test_primary_comparison_is_a_one_sided_mann_whitney_and_the_effect_in_random_sds():
    from scipy.stats import mannwhitneyu

    from pcdarts.experiments.stats import compare_with_random, primary_verdict

    rnd = [0.80, 0.81, 0.82, 0.83, 0.84]
    cells = [{"arm": "random", "kind": "random", "test_accuracy": a} for a in rnd]
    cells += [{"arm": "cap2", "kind": "searched", "test_accuracy": a} for a in (0.85, 0.86, 0.87)]
    c = compare_with_random(cells, "cap2")
    assert c["p_value"] == pytest.approx(mannwhitneyu([0.85, 0.86, 0.87], rnd, alternative="greater").pvalue)
    assert c["effect_sd"] == pytest.approx((0.86 - 0.82) / 0.0158113883, rel=1e-6)
    assert "BEATS random" in primary_verdict({"primary": "cap2", "comparisons": [c]})
    weak = compare_with_random([*cells[:5], *({"arm": "cap2", "kind": "searched", "test_accuracy": a}
                                               for a in (0.83, 0.835))], "cap2")  # fmt: skip
    assert "does NOT beat" in primary_verdict({"primary": "cap2", "comparisons": [weak]})
    assert compare_with_random(cells[:1] + cells[5:], "cap2") is None  # one random cell: no comparison yet
    with pytest.raises(ValueError, match="primary arm"):
        StudyConfig(primary="nope")


def test_a_study_takes_its_budget_from_the_calibration(calibration, idx_dir, tmp_path, capsys):
    import shutil

    calib, _ = calibration
    chosen = json.loads((calib / "fidelity.json").read_text())["chosen_budget"]
    out = tmp_path / "study"  # a copy of the calibration folder without the library-call study of the test above
    shutil.copytree(calib, out, ignore=shutil.ignore_patterns("study*"))
    args = ["study", "--out", str(out), "--budget-from", str(calib), "--dataset", "fashion-mnist", "--data",
            str(idx_dir), "--searches", "0", "--random", "3", "--threads", "1", "--no-progress"]  # fmt: skip
    for k, v in TRAIN.items():
        args += ["--train-set", f"{k}={json.dumps(v)}"]
    trained = sorted(p.name for p in (out / "train").iterdir())
    assert main(args) == 0
    study = json.loads((out / "study.json").read_text())
    assert {c["budget_epochs"] for c in study["cells"]} == {chosen} and len(study["cells"]) == 3
    assert sorted(p.name for p in (out / "train").iterdir()) == trained  # the calibration's trainings, reused


def test_the_final_network_trains_channels_last_on_cpu(digits_runs):
    from pcdarts.files import load_checkpoint as load

    weights = load(digits_runs / "train" / "best.pt")["model"]
    assert weights["stem0.0.weight"].is_contiguous(memory_format=torch.channels_last)


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


def test_time_by_part_counts_each_shared_run_once():
    from pcdarts.experiments.tables import format_times, time_by_part

    shared = {"kind": "searched", "seed": 0, "search_run": "search/s0", "search_seconds": 100.0}
    cells = [
        {**shared, "arm": "cap2", "search_seconds": 90.0, "train_run": "train/x", "train_seconds": 50.0},
        {**shared, "arm": "pcdarts", "train_run": "train/x", "train_seconds": 50.0},  # same cell: one training
        {
            **shared,
            "arm": "pt",
            "search_seconds": 130.0,
            "select_seconds": 30.0,
            "selection": "pt-t0.2",
            "train_run": "train/y",
            "train_seconds": 60.0,
        },  # fmt: skip
        {"arm": "random", "kind": "random", "seed": 0, "train_run": "train/r0", "train_seconds": 40.0},
    ]
    fidelity = {
        "rows": [{"train_run": "train/r0", "train_seconds": 40.0}, {"train_run": "train/r1", "train_seconds": 10.0}]
    }
    parts = {p["part"]: (p["runs"], p["seconds"]) for p in time_by_part({"cells": cells}, fidelity)}
    assert parts == {
        "calibration trainings": (2, 50.0),  # the random arm's training is the calibration's
        "searches": (1, 100.0),  # three arms, one search; DARTS-PT's selection time taken out
        "selections (DARTS-PT)": (1, 30.0),
        "trainings of searched cells": (2, 110.0),
    }
    table = format_times(time_by_part({"cells": cells}, fidelity))
    assert "| all | 6 | 0.1 | not recorded |" in table  # these runs kept no CPU time


def test_time_by_part_sums_cpu_time_where_every_run_kept_it():
    from pcdarts.experiments.tables import format_times, time_by_part

    search = {"kind": "searched", "seed": 0, "search_run": "search/s0", "search_seconds": 3600.0}
    cells = [
        {**search, "arm": "cap2", "search_cpu_seconds": 3000.0, "train_run": "t/x", "train_seconds": 1800.0,
         "train_cpu_seconds": 1700.0},
        {**search, "arm": "pt", "search_seconds": 7200.0, "search_cpu_seconds": 6000.0, "select_seconds": 3600.0,
         "select_cpu_seconds": 3000.0, "selection": "pt", "train_run": "t/y", "train_seconds": 1800.0,
         "train_cpu_seconds": 1600.0},
        {"arm": "random", "kind": "random", "seed": 0, "train_run": "t/r0", "train_seconds": 1800.0},
    ]  # fmt: skip
    fidelity = {"rows": [{"train_run": "t/r0", "train_seconds": 1800.0}]}  # a calibration run before CPU was kept
    parts = {p["part"]: (p["seconds"], p["cpu_seconds"]) for p in time_by_part({"cells": cells}, fidelity)}
    assert parts == {
        "calibration trainings": (1800.0, None),
        "searches": (3600.0, 3000.0),  # the PT arm's total less its selection
        "selections (DARTS-PT)": (3600.0, 3000.0),
        "trainings of searched cells": (3600.0, 3300.0),
    }
    table = format_times(time_by_part({"cells": cells}, fidelity))
    assert "| calibration trainings | 1 | 0.5 | not recorded |" in table and "| searches | 1 | 1.0 | 0.8 |" in table
    assert "| all | 5 | 3.5 | 2.6 (recorded parts) |" in table
    assert {p["part"] for p in time_by_part({"cells": cells})} == {"searches", "selections (DARTS-PT)", "trainings"}
    # the only arm read an early epoch of a search that ran longer: the search counts as it ran
    early = [{**c, "search_seconds": 600.0, "search_run_seconds": 3600.0, "search_run_cpu_seconds": 3400.0}
             for c in cells if c["arm"] == "cap2"]  # fmt: skip
    searches = time_by_part({"cells": early})[0]
    assert searches == {"part": "searches", "runs": 1, "seconds": 3600.0, "cpu_seconds": 3400.0}


def test_study_docs_publish_a_study_and_its_calibration(calibration, idx_dir, tmp_path):
    """studies/tools/study_docs.py --name study2: the calibration, arms, cells and times land in STUDY.md's blocks."""
    import importlib.util
    import shutil
    from pathlib import Path

    calib, _ = calibration
    out = tmp_path / "study"
    shutil.copytree(calib, out, ignore=shutil.ignore_patterns("study*"))
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    blocks = ("study2-fidelity", "study2-table", "study2-cells", "study2-times")
    (root / "docs" / "STUDY.md").write_text("".join(f"<!-- {b} -->\nold\n<!-- /{b} -->\n" for b in blocks))
    (root / "README.md").write_text("headline\n")
    path = Path(__file__).resolve().parents[2] / "studies" / "tools" / "study_docs.py"
    spec = importlib.util.spec_from_file_location("study_docs", path)
    docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs)
    # the calibration is finished and the study has not begun: --calibration-only publishes just the calibration
    docs.main([str(out), "--name", "study2", "--calibration-only"], root=root)
    page = (root / "docs" / "STUDY.md").read_text()
    assert page.count("old") == 3 and "Kendall tau vs longest" in page and "![calibration](study2/fidelity.png)" in page
    assert_drawn(root / "docs" / "study2" / "fidelity.png")
    assert not (root / "docs" / "study2" / "study.json").exists() and (root / "README.md").read_text() == "headline\n"
    unfinished = json.loads((out / "fidelity.json").read_text())
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "fidelity.json").write_text(json.dumps({**unfinished, "chosen_budget": None}))
    with pytest.raises(SystemExit, match="not finished .*nothing written"):
        docs.main([str(tmp_path / "unfinished"), "--name", "study2", "--calibration-only"], root=root)
    with pytest.raises(SystemExit):  # the flag belongs to Study II
        docs.main([str(out), "--calibration-only"], root=root)
    cfg = StudyConfig(dataset="fashion-mnist", data=str(idx_dir), arms=(), searches=0, random_cells=3,
                      train={**TRAIN, "epochs": 2})  # fmt: skip
    run_study(cfg, out, progress=False, threads=1)
    (root / "docs" / "STUDY.md").write_text("".join(f"<!-- {b} -->\nold\n<!-- /{b} -->\n" for b in blocks))
    docs.main([str(out), "--name", "study2"], root=root)
    page = (root / "docs" / "STUDY.md").read_text()
    assert "old" not in page and "Kendall tau vs longest" in page and "![calibration](study2/fidelity.png)" in page
    assert "| random | 3 |" in page and "param-free ops (reduce)" in page and "no comparison with the random" in page
    assert "| calibration trainings | 9 |" in page  # 3 cells x 2 budgets + 3 second seeds
    assert page.count("| random | 0 |") == 1  # every cell listed once
    published = json.loads((root / "docs" / "study2" / "study.json").read_text())
    assert len(published["cells"]) == 3 and all(c["budget_epochs"] == 2 for c in published["cells"])
    assert_drawn(root / "docs" / "study2" / "fidelity.png")
    assert_drawn(root / "docs" / "study2" / "study.png")
    assert (root / "README.md").read_text() == "headline\n"  # no study2-table block there yet: left alone
    (root / "docs" / "STUDY.md").write_text("no blocks\n")
    (root / "docs" / "study2" / "study.json").unlink()
    with pytest.raises(SystemExit, match="has no <!-- study2-fidelity -->"):
        docs.main([str(out), "--name", "study2"], root=root)
    assert not (root / "docs" / "study2" / "study.json").exists()  # refused before anything was written
    with pytest.raises(SystemExit, match="study_docs: .*study.json"):  # no study in that folder: one line
        docs.main([str(tmp_path / "nothing"), "--name", "study2"], root=root)


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
    for k, v in TRAIN.items():
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


def test_the_exact_mann_whitney_p_counts_ties_at_mid_ranks():
    """Without ties the p-value is scipy's exact one; with ties it is the exact permutation p-value of U with
    mid-ranks (checked against scipy's exhaustive permutation test), which scipy's exact method overstates."""
    import numpy as np
    from scipy.stats import mannwhitneyu, permutation_test

    from pcdarts.experiments.stats import mann_whitney_greater, recompute_comparisons
    from pcdarts.experiments.tables import format_comparisons

    a, b = [0.905, 0.902, 0.901, 0.899], [0.898, 0.900, 0.897, 0.899, 0.895, 0.896]
    p, how = mann_whitney_greater([0.905, 0.902, 0.901], b)
    assert how.startswith("exact") and p == pytest.approx(
        mannwhitneyu([0.905, 0.902, 0.901], b, alternative="greater", method="exact").pvalue
    )

    def u(x, y, axis):
        return mannwhitneyu(x, y, alternative="greater", method="asymptotic", axis=axis).statistic

    p, _ = mann_whitney_greater(a, b)  # 0.899 is in both groups
    exhaustive = permutation_test((np.array(a), np.array(b)), u, permutation_type="independent",
                                  alternative="greater", n_resamples=np.inf, vectorized=True).pvalue  # fmt: skip
    assert p == pytest.approx(exhaustive, abs=1e-12)
    assert p < mannwhitneyu(a, b, alternative="greater", method="exact").pvalue  # scipy's overstates it here
    cells = [{"arm": "x", "kind": "searched", "test_accuracy": v} for v in a]
    cells += [{"arm": "random", "kind": "random", "test_accuracy": v} for v in b]
    as_run = [{"arm": "x", "n": 4, "n_random": 6, "margin": 0.0, "effect_sd": 0.0, "p_value": 0.5, "test": "old"}]
    study = recompute_comparisons({"config": {"arms": [{"name": "x"}]}, "cells": cells, "comparisons": as_run})
    assert study["comparisons"][0]["p_value"] == p and "ties at mid-ranks" in study["comparisons"][0]["test"]
    assert study["comparisons_as_run"] == as_run  # what the study wrote is kept, and shown beside
    assert recompute_comparisons(study)["comparisons_as_run"] == as_run
    table = format_comparisons(study)
    assert f"| {p:.3f} | 0.500 |" in table and "the study's own revision wrote, by its test: old." in table


def test_comparisons_put_the_primary_first_and_mark_the_others_secondary():
    from pcdarts.experiments.tables import format_cells, format_comparisons

    comp = {"n": 6, "n_random": 12, "margin": 0.004, "effect_sd": 0.8, "p_value": 0.12}
    study = {"primary": "cap2", "comparisons": [{**comp, "arm": "pcdarts"}, {**comp, "arm": "cap2", "p_value": 0.03}]}
    rows = format_comparisons(study).splitlines()[2:]
    assert rows[0].startswith("| cap2 | **primary** | 6 | 12 | +0.40 points | +0.80 | 0.030 |")
    assert rows[1].startswith("| pcdarts | secondary |")
    cell = {"arm": "cap2", "seed": 3, "test_accuracy": 0.9, "val_accuracy": None, "params": 12345,
            "param_free_normal": 2, "param_free_reduce": 1, "budget_epochs": 16,
            "genotype": {"normal": [["skip_connect", 0]], "reduce": [["max_pool_3x3", 1]]}}  # fmt: skip
    line = format_cells({"cells": [cell]}).splitlines()[2]
    assert line == "| cap2 | 3 | 90.00 % | - | 12,345 | 2 / 1 | 16 | skip_connect(0) | max_pool_3x3(1) |"


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
    for k, v in TRAIN.items():
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
                      random_cells=2, search=PENDING_SEARCH, train=dict(TRAIN))  # fmt: skip
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
    cfg = StudyConfig(dataset="fashion-mnist", data=str(idx_dir), searches=0, random_cells=1, train=dict(TRAIN))
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


@pytest.mark.parametrize("key", ["genotype=DARTS_V2", "dataset=digits", "data=/tmp"])
def test_fidelity_refuses_training_settings_it_sets_itself(tmp_path, capsys, key):
    assert main(["fidelity", "--dataset", "synthetic", "--train-set", key, "--out", str(tmp_path / "f")]) == 2
    assert "is not a training setting of a calibration" in one_line(capsys)
    assert not (tmp_path / "f").exists()
