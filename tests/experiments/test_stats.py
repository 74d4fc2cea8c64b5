"""experiments.stats: Kendall tau and its bootstrap, the one-sided Mann-Whitney comparison with the random arm."""

import math
import random

import pytest
from scipy.stats import kendalltau

from pcdarts.experiments.stats import bootstrap_tau, kendall_tau
from pcdarts.experiments.study import StudyConfig


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
    sup = sum((x > y) + 0.5 * (x == y) for x in a for y in b) / (len(a) * len(b))  # U / (n1 n2), by hand
    assert study["comparisons"][0]["superiority"] == pytest.approx(sup)
    assert f"| {p:.3f} | {sup:.2f} | 0.500 |" in table and "the study's own revision wrote, by its test: old." in table
    assert "| probability of superiority | p as the study's revision wrote it |" in table
