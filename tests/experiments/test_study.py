"""`pcdarts study`: arms, shared searches, random cells, the table, and resumption after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pcdarts.cli import main
from pcdarts.experiments.stats import summarise_arms
from pcdarts.experiments.study import Arm, StudyConfig, run_study
from pcdarts.experiments.tables import format_table, verdict
from tests.conftest import one_line
from tests.idx_data import write_idx
from tests.pictures import assert_drawn
from tests.tiny import STUDY_SEARCH as SEARCH
from tests.tiny import STUDY_TRAIN as TRAIN


def _args(data, out):
    args = [
        "study",
        "--dataset",
        "fashion-mnist",
        "--data",
        str(data),
        "--out",
        str(out),
        "--searches",
        "1",
        "--random",
        "2",
        "--arm",
        "pcdarts",
        "--arm",
        "cap1:max_param_free=1",
        "--arm",
        "bd:beta_decay=25",
        "--threads",
        "1",
        "--no-progress",
    ]
    for k, v in SEARCH.items():
        args += ["--search-set", f"{k}={v}"]
    for k, v in TRAIN.items():
        args += ["--train-set", f"{k}={json.dumps(v)}"]
    return args


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    return write_idx(tmp_path_factory.mktemp("idx"))


@pytest.fixture(scope="module")
def finished_study(idx_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "s"
    assert main(_args(idx_dir, out)) == 0
    return out


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
    assert main(_args(idx_dir, finished_study)) == 0
    assert time.time() - t0 < 30
    assert {p: p.stat().st_mtime_ns for p in results} == stamps
    assert "| random | 2 |" in capsys.readouterr().out  # the table is printed from the stored cells


@pytest.mark.slow
def test_study_docs_publish_a_study_with_arms(finished_study, tmp_path):
    """studies/tools/study_docs.py --name study2 on a study with searched arms and a primary arm: every cell in the
    published study.json with its arm, seeds, costs and accuracies, the comparisons recomputed, the verdict written."""
    import importlib.util
    from pathlib import Path

    folder = tmp_path / "s"
    folder.mkdir()
    study = json.loads((finished_study / "study.json").read_text())
    more = [{**c, "seed": c["seed"] + 10, "test_accuracy": c["test_accuracy"] + 0.001} for c in study["cells"]]
    (folder / "study.json").write_text(json.dumps({**study, "primary": "cap1", "cells": study["cells"] + more}))
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    blocks = ("study2-table", "study2-cells", "study2-times")
    (root / "docs" / "STUDY.md").write_text("".join(f"<!-- {b} -->\nold\n<!-- /{b} -->\n" for b in blocks))
    (root / "README.md").write_text("<!-- study2-table -->\nold\n<!-- /study2-table -->\n")
    spec = importlib.util.spec_from_file_location(
        "study_docs", Path(__file__).resolve().parents[2] / "studies" / "tools" / "study_docs.py"
    )
    docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs)
    docs.main([str(folder), "--name", "study2"], root=root)
    published = json.loads((root / "docs" / "study2" / "study.json").read_text())
    fields = {"arm", "kind", "seed", "test_accuracy", "val_accuracy", "params", "param_free_normal",
              "param_free_reduce", "budget_epochs", "revision"}  # fmt: skip
    assert len(published["cells"]) == 10 and all(fields <= set(c) for c in published["cells"])
    assert {c["arm"] for c in published["comparisons"]} == {"pcdarts", "cap1", "bd"}
    assert published["comparisons_as_run"] == study["comparisons"]  # what the run wrote, kept for the record
    page = (root / "docs" / "STUDY.md").read_text()
    readme = (root / "README.md").read_text()
    assert "old" not in page and "old" not in readme
    assert "primary arm 'cap1' (2 cells) vs random (4)" in readme and "Mann-Whitney" in readme
    assert "**primary**" in page and "secondary" in page and "| searches | 2 |" in page


def test_a_study_with_other_settings_is_refused(finished_study, idx_dir, capsys):
    args = _args(idx_dir, finished_study)
    args[args.index("--random") + 1] = "3"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "other settings (random_cells)" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_sigkill_at_any_point_then_rerun_gives_the_uninterrupted_study(finished_study, idx_dir, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "pcdarts", *_args(idx_dir, out)]
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
