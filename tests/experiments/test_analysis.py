"""experiments.analysis on a made-up study whose answers are known by hand."""

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
from tests.tiny import analysis_study


def test_percentiles_count_ties_half(tmp_path):
    assert percentile(0.5, [0.1, 0.5, 0.9, 0.9]) == 37.5
    assert math.isnan(percentile(0.5, []))
    rows = {(r["arm"], r["seed"]): r["percentile"] for r in percentiles(analysis_study(tmp_path))}
    assert rows[("pcdarts", 0)] == 100.0  # above every random cell
    assert rows[("darts", 0)] == 5.0  # ties the lowest random cell: half of one in ten
    assert rows[("pcdarts", 1)] == 45.0  # 0.84 ties the fifth of ten, four below


def test_the_arms_as_an_ablation(tmp_path):
    rows = {r["arm"]: r for r in ablation(analysis_study(tmp_path))}
    assert rows["pcdarts"]["settings"] == {"edge_norm": True, "k": 4}
    assert rows["darts"]["settings"] == {"edge_norm": False, "k": 1}
    assert rows["pcdarts"]["median_percentile"] == pytest.approx(72.5)
    assert rows["darts"]["mean"] == pytest.approx(0.8025)


def test_cost_matched_random_search(tmp_path):
    study = analysis_study(tmp_path)
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
    one = oneshot_ranking(analysis_study(tmp_path, scores), tmp_path)
    assert len(one["supernets"]) == 1 and one["supernets"][0]["cells"] == 10
    assert one["mean_tau_holdout"] == pytest.approx(tau) and one["mean_tau_test"] == pytest.approx(tau)
    assert oneshot_ranking(analysis_study(tmp_path), tmp_path) is None


def test_noise_floor_from_the_retrained_cells(tmp_path):
    nf = noise_floor(analysis_study(tmp_path))
    assert nf["pairs"] == 2
    assert nf["mean_abs_diff"] == pytest.approx(0.02)
    assert nf["single_training_sd"] == pytest.approx(math.sqrt((0.01**2 + 0.03**2) / 2 / 2))
    assert nf["random_sd"] == pytest.approx(0.030277, abs=1e-5)


def test_the_analysis_as_markdown(tmp_path):
    text = format_analysis(analysis_study(tmp_path, [s / 10 for s in range(10)]), tmp_path, "pcdarts")
    assert "| pcdarts | True | 4 | 2 | 86.75 % ± 3.89 % | 72.5 |" in text
    assert "pcdarts 100, 45; darts 5, 10" in text
    assert "as much CPU time as 4 random cells' trainings" in text
    assert "mean +1.00 over 1 supernets (+1.00); against test accuracy +1.00 (+1.00)." in text
    assert "2 random cells trained twice differ by 2.00 %" in text
