"""studies/tools/study_docs.py: a finished study (and its calibration) published into STUDY.md's blocks."""

import importlib.util
import json
from pathlib import Path

import pytest

from pcdarts.experiments.stats import summarise_arms
from pcdarts.experiments.study import StudyConfig, run_study
from pcdarts.nas.nb201 import random_nb201
from tests.pictures import assert_drawn
from tests.tiny import CALIBRATION_TRAIN, analysis_study


@pytest.fixture
def docs():
    """studies/tools/study_docs.py, loaded from its file (it is a script, not part of the package)."""
    path = Path(__file__).resolve().parents[2] / "studies" / "tools" / "study_docs.py"
    spec = importlib.util.spec_from_file_location("study_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_study_docs_publish_a_study_and_its_calibration(docs, calibration, idx_dir, tmp_path):
    """studies/tools/study_docs.py --name study2: the calibration, arms, cells and times land in STUDY.md's blocks."""
    import shutil

    calib, _ = calibration
    out = tmp_path / "study"
    shutil.copytree(calib, out, ignore=shutil.ignore_patterns("study*"))
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    blocks = ("study2-fidelity", "study2-table", "study2-cells", "study2-times")
    (root / "docs" / "STUDY.md").write_text("".join(f"<!-- {b} -->\nold\n<!-- /{b} -->\n" for b in blocks))
    (root / "README.md").write_text("headline\n")
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
                      train={**CALIBRATION_TRAIN, "epochs": 2})  # fmt: skip
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


@pytest.mark.slow
def test_study_docs_publish_a_study_with_arms(docs, finished_study, tmp_path):
    """studies/tools/study_docs.py --name study2 on a study with searched arms and a primary arm: every cell in the
    published study.json with its arm, seeds, costs and accuracies, the comparisons recomputed, the verdict written."""

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


def test_study_docs_publish_study3_only_when_complete(docs, tmp_path):
    """studies/tools/study_docs.py --name study3: refused while the study runs; once complete every block is filled."""

    from tests.pictures import assert_drawn

    folder = tmp_path / "study3"
    folder.mkdir()
    study = analysis_study(folder, [s / 10 for s in range(10)])
    study["config"] |= {"dataset": "fashion-mnist", "rule": "superiority"}
    study["arms"] = summarise_arms(study["cells"])
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    blocks = ("study3-table", "study3-analysis", "study3-cells", "study3-times")
    (root / "docs" / "STUDY.md").write_text("".join(f"<!-- {b} -->\nSTALE\n<!-- /{b} -->\n" for b in blocks))
    (root / "README.md").write_text("headline\n")
    (folder / "study.json").write_text(json.dumps({**study, "complete": False}))
    with pytest.raises(SystemExit, match="not complete"):
        docs.main([str(folder), "--name", "study3"], root=root)
    assert (root / "docs" / "STUDY.md").read_text().count("STALE") == 4  # nothing written
    (folder / "study.json").write_text(json.dumps({**study, "complete": True}))
    docs.main([str(folder), "--name", "study3"], root=root)
    page = (root / "docs" / "STUDY.md").read_text()
    assert "STALE" not in page and "probability of superiority" in page and "Cost-matched random search" in page
    assert f"`{random_nb201(3).to_text()}`" in page and "| random-retrain | 1 | 1 |" in page
    # one cell type: the arm table counts `none` edges, not a reduction cell; each arm's superiority beside its p
    assert "| param-free ops per cell (skips, pools) | `none` edges per cell |" in page and "(normal)" not in page
    assert "| 100,000 | 2.0 | 1.0 |" in page and "| probability of superiority |" in page
    assert_drawn(root / "docs" / "study3" / "study.png")
    published = json.loads((root / "docs" / "study3" / "study.json").read_text())
    assert published["complete"] and len(published["cells"]) == len(study["cells"]) and published["comparisons"]
    assert_drawn(root / "docs" / "study3" / "ablation.png") and "![ablation](study3/ablation.png)" in page
