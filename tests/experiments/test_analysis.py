"""experiments.analysis on a made-up study whose answers are known by hand."""

import json
import math

import pytest

from pcdarts.experiments.analysis import (
    ablation,
    cost_matched_random_search,
    noise_floor,
    oneshot_ranking,
    percentile,
    percentiles,
)
from pcdarts.experiments.tables import format_analysis
from pcdarts.nas.nb201 import random_nb201

COMMON = {"cell": "nasbench201", "params": 100_000, "param_free_normal": 2, "none_edges": 1, "train_seed": 0,
          "train_seconds": 150.0, "search_seconds": 0.0}  # fmt: skip


def _study(tmp_path, oneshot_scores=None):
    cells = []
    for s in range(10):  # random cell s: test accuracy 0.80 + s/100, hold-out the same order
        cells.append({"arm": "random", "kind": "random", "seed": s, "genotype": random_nb201(s).to_dict(),
                      "test_accuracy": round(0.80 + s / 100, 4), "holdout_accuracy": round(0.70 + s / 100, 4),
                      "train_cpu_seconds": 100.0, **COMMON})  # fmt: skip
    for s, diff in enumerate([0.01, -0.03]):  # two retrained cells
        cells.append({"arm": "random-retrain", "kind": "retrain", "seed": s, "test_accuracy": 0.80 + s / 100 + diff,
                      "holdout_accuracy": 0.0, "train_cpu_seconds": 100.0, "genotype": random_nb201(s).to_dict(),
                      **COMMON, "train_seed": 1})  # fmt: skip
    for arm, accs in (("pcdarts", [0.895, 0.84]), ("darts", [0.80, 0.805])):
        for s, a in enumerate(accs):
            cells.append({"arm": arm, "kind": "searched", "seed": s, "test_accuracy": a, "holdout_accuracy": a,
                          "search_cpu_seconds": 240.0, "train_cpu_seconds": 110.0,
                          "genotype": random_nb201(100 + s).to_dict(), **COMMON})  # fmt: skip
    for i, c in enumerate(cells):
        c["train_run"], c["train_cpu_seconds"] = f"train/{i}", c["train_cpu_seconds"]
    if oneshot_scores is not None:
        texts = [random_nb201(s).to_text() for s in range(10)]
        (tmp_path / "oneshot.json").write_text(json.dumps({"cells": texts, "scores": oneshot_scores}))
        cells[-4]["oneshot_run"] = "oneshot.json"
    arms = [{"name": "pcdarts", "overrides": {"k": 4, "edge_norm": True}},
            {"name": "darts", "overrides": {"k": 1, "edge_norm": False}}]  # fmt: skip
    return {"config": {"arms": arms}, "cells": cells, "primary": "pcdarts"}


def test_percentiles_count_ties_half(tmp_path):
    assert percentile(0.5, [0.1, 0.5, 0.9, 0.9]) == 37.5
    assert math.isnan(percentile(0.5, []))
    rows = {(r["arm"], r["seed"]): r["percentile"] for r in percentiles(_study(tmp_path))}
    assert rows[("pcdarts", 0)] == 100.0  # above every random cell
    assert rows[("darts", 0)] == 5.0  # ties the lowest random cell: half of one in ten
    assert rows[("pcdarts", 1)] == 45.0  # 0.84 ties the fifth of ten, four below


def test_the_arms_as_an_ablation(tmp_path):
    rows = {r["arm"]: r for r in ablation(_study(tmp_path))}
    assert rows["pcdarts"]["settings"] == {"edge_norm": True, "k": 4}
    assert rows["darts"]["settings"] == {"edge_norm": False, "k": 1}
    assert rows["pcdarts"]["median_percentile"] == pytest.approx(72.5)
    assert rows["darts"]["mean"] == pytest.approx(0.8025)


def test_cost_matched_random_search(tmp_path):
    study = _study(tmp_path)
    cm = cost_matched_random_search(study, "pcdarts", draws=2000)
    assert cm["k"] == 4  # (240 + 110) / 100 = 3.5, rounded to the even 4
    assert cm["arm_mean"] == pytest.approx(0.8675)
    # the best of 4 of 10 by hold-out is the best of 4 by test (same order): expected maximum rank 8.8 of 10
    expected = sum((0.80 + r / 100) * math.comb(r, 3) / math.comb(10, 4) for r in range(3, 10))
    assert cm["mean"] == pytest.approx(expected, abs=0.002)
    assert cm["interval"][0] <= cm["mean"] <= cm["interval"][1] <= 0.89
    assert cost_matched_random_search(study, "pcdarts", draws=500) == cost_matched_random_search(
        study, "pcdarts", draws=500
    )  # a fixed seed: the same draws
    assert cost_matched_random_search(study, "nothing") is None


@pytest.mark.parametrize(
    ("scores", "tau"), [([s / 10 for s in range(10)], 1.0), ([1 - s / 10 for s in range(10)], -1.0)]
)
def test_oneshot_ranking_against_trained_cells(tmp_path, scores, tau):
    one = oneshot_ranking(_study(tmp_path, scores), tmp_path)
    assert len(one["supernets"]) == 1 and one["supernets"][0]["cells"] == 10
    assert one["mean_tau_holdout"] == pytest.approx(tau) and one["mean_tau_test"] == pytest.approx(tau)
    assert oneshot_ranking(_study(tmp_path), tmp_path) is None


def test_noise_floor_from_the_retrained_cells(tmp_path):
    nf = noise_floor(_study(tmp_path))
    assert nf["pairs"] == 2
    assert nf["mean_abs_diff"] == pytest.approx(0.02)
    assert nf["single_training_sd"] == pytest.approx(math.sqrt((0.01**2 + 0.03**2) / 2 / 2))
    assert nf["random_sd"] == pytest.approx(0.030277, abs=1e-5)


def test_the_analysis_as_markdown(tmp_path):
    text = format_analysis(_study(tmp_path, [s / 10 for s in range(10)]), tmp_path, "pcdarts")
    assert "| pcdarts | True | 4 | 2 | 86.75 % ± 3.89 % | 72.5 |" in text
    assert "pcdarts 100, 45; darts 5, 10" in text
    assert "as much CPU time as 4 random cells' trainings" in text
    assert "mean +1.00 over 1 supernets" in text
    assert "2 random cells trained twice differ by 2.00 %" in text


def test_study_docs_publish_study3_only_when_complete(tmp_path):
    """studies/tools/study_docs.py --name study3: refused while the study runs; once complete every block is filled."""
    import importlib.util
    from pathlib import Path

    from pcdarts.experiments.stats import summarise_arms
    from tests.pictures import assert_drawn

    folder = tmp_path / "study3"
    folder.mkdir()
    study = _study(folder, [s / 10 for s in range(10)])
    study["config"] |= {"dataset": "fashion-mnist", "rule": "superiority"}
    study["arms"] = summarise_arms(study["cells"])
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    blocks = ("study3-table", "study3-analysis", "study3-cells", "study3-times")
    (root / "docs" / "STUDY.md").write_text("".join(f"<!-- {b} -->\nSTALE\n<!-- /{b} -->\n" for b in blocks))
    (root / "README.md").write_text("headline\n")
    path = Path(__file__).resolve().parents[2] / "studies" / "tools" / "study_docs.py"
    spec = importlib.util.spec_from_file_location("study_docs", path)
    docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs)
    (folder / "study.json").write_text(json.dumps({**study, "complete": False}))
    with pytest.raises(SystemExit, match="not complete"):
        docs.main([str(folder), "--name", "study3"], root=root)
    assert (root / "docs" / "STUDY.md").read_text().count("STALE") == 4  # nothing written
    (folder / "study.json").write_text(json.dumps({**study, "complete": True}))
    docs.main([str(folder), "--name", "study3"], root=root)
    page = (root / "docs" / "STUDY.md").read_text()
    assert "STALE" not in page and "probability of superiority" in page and "Cost-matched random search" in page
    assert f"`{random_nb201(3).to_text()}`" in page and "| random-retrain | 1 | 1 |" in page
    assert_drawn(root / "docs" / "study3" / "study.png")
