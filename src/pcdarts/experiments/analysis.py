"""A finished study read further than its verdict: where each searched cell falls among the random ones, the
arms as a factorial ablation, what random search would buy for the same CPU time, how well a supernet ranks
cells before training them, and how much one training's noise moves a cell.

Each function takes a study.json as ``load_study`` returns it (and, for the one-shot ranking, its folder) and
returns plain data; ``tables.format_analysis`` prints them. Used for Study III (docs/STUDY3_PLAN.md, "Reported
whatever the outcome"), and for any study with random cells.
"""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path
from typing import Any

from ..files import read_run_json
from .stats import kendall_tau


def percentile(x: float, others: list[float]) -> float:
    """The share of ``others`` below ``x``, ties counting half, in percent."""
    if not others:
        return math.nan
    return 100.0 * sum((o < x) + 0.5 * (o == x) for o in others) / len(others)


def _random(study: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in study["cells"] if c["kind"] == "random"]


def percentiles(study: dict[str, Any]) -> list[dict[str, Any]]:
    """Each searched cell's test accuracy as a percentile of the random cells' (trained identically)."""
    rnd = [c["test_accuracy"] for c in _random(study)]
    return [
        {
            "arm": c["arm"],
            "seed": c["seed"],
            "test_accuracy": c["test_accuracy"],
            "percentile": percentile(c["test_accuracy"], rnd),
        }  # fmt: skip
        for c in study["cells"]
        if c["kind"] == "searched"
    ]


def ablation(study: dict[str, Any]) -> list[dict[str, Any]]:
    """Per arm: its settings that differ between arms (K, edge normalisation, ...), n, mean and std of test
    accuracy, and its cells' median percentile among the random cells."""
    arms = study["config"]["arms"]
    varied = sorted({k for a in arms for k in a.get("overrides", {})})
    by_arm: dict[str, list[float]] = {}
    for row in percentiles(study):
        by_arm.setdefault(row["arm"], []).append(row)
    out = []
    for arm in arms:
        rows = by_arm.get(arm["name"], [])
        acc = [r["test_accuracy"] for r in rows]
        out.append(
            {
                "arm": arm["name"],
                "settings": {k: arm.get("overrides", {}).get(k) for k in varied},
                "n": len(rows),
                "mean": statistics.fmean(acc) if acc else math.nan,
                "std": statistics.stdev(acc) if len(acc) > 1 else math.nan,
                "median_percentile": statistics.median(r["percentile"] for r in rows) if rows else math.nan,
            }
        )
    return out


def cost_matched_random_search(
    study: dict[str, Any], arm: str, *, draws: int = 10_000, seed: int = 0, interval: float = 0.9
) -> dict[str, Any] | None:
    """Random search given what one search of ``arm`` and its training cost: k random cells, k = (the arm's
    mean search CPU time + its mean training CPU time) / the random cells' mean training CPU time, rounded, at
    least 1; the best of k by hold-out accuracy, k drawn without replacement from the study's random cells,
    its test accuracy over ``draws`` bootstrap draws (mean and central ``interval``). None without cells."""
    searched = [c for c in study["cells"] if c["arm"] == arm and c["kind"] == "searched"]
    rnd = _random(study)
    if not searched or not rnd:
        return None
    cost = statistics.fmean(c["search_cpu_seconds"] + c["train_cpu_seconds"] for c in searched)
    k = min(len(rnd), max(1, round(cost / statistics.fmean(c["train_cpu_seconds"] for c in rnd))))
    rng = random.Random(seed)
    best = []
    for _ in range(draws):
        pick = rng.sample(rnd, k)
        best.append(max(pick, key=lambda c: c["holdout_accuracy"])["test_accuracy"])
    best.sort()
    lo, hi = best[int((1 - interval) / 2 * draws)], best[min(draws - 1, int((1 + interval) / 2 * draws))]
    return {
        "arm": arm,
        "k": k,
        "draws": draws,
        "mean": statistics.fmean(best),
        "interval": [lo, hi],
        "interval_share": interval,
        "arm_mean": statistics.fmean(c["test_accuracy"] for c in searched),
    }


def oneshot_ranking(study: dict[str, Any], folder: str | Path) -> dict[str, Any] | None:
    """Kendall tau-b between each supernet's one-shot scores of the random cells and the same cells'
    stand-alone hold-out (and test) accuracy: per supernet and the mean. None where no search scored any."""
    from ..nas.nb201 import NB201Genotype

    folder = Path(folder)
    trained = {NB201Genotype.from_dict(c["genotype"]).to_text(): c for c in _random(study)}
    rows = []
    for c in study["cells"]:
        if not c.get("oneshot_run"):
            continue
        scores = read_run_json(folder / c["oneshot_run"])
        pairs = [(s, trained[t]) for t, s in zip(scores["cells"], scores["scores"]) if t in trained]
        if len(pairs) < 3:
            continue
        one = [s for s, _ in pairs]
        rows.append(
            {
                "arm": c["arm"],
                "seed": c["seed"],
                "cells": len(pairs),
                "tau_holdout": kendall_tau(one, [t["holdout_accuracy"] for _, t in pairs]),
                "tau_test": kendall_tau(one, [t["test_accuracy"] for _, t in pairs]),
            }
        )
    if not rows:
        return None
    return {
        "supernets": rows,
        "mean_tau_holdout": statistics.fmean(r["tau_holdout"] for r in rows),
        "mean_tau_test": statistics.fmean(r["tau_test"] for r in rows),
    }


def noise_floor(study: dict[str, Any]) -> dict[str, Any] | None:
    """How far one training's noise moves a cell: the random cells trained twice (the ``retrain`` cells
    beside the same seed's first training): mean absolute difference of the two test accuracies, the SD of a
    single training (root mean square difference / sqrt 2), Kendall tau-b between the two trainings; beside
    the SD of all random cells. None before two cells have both trainings."""
    first = {c["seed"]: c["test_accuracy"] for c in _random(study)}
    pairs = [(first[c["seed"]], c["test_accuracy"]) for c in study["cells"]
             if c["kind"] == "retrain" and c["seed"] in first]  # fmt: skip
    if len(pairs) < 2:
        return None
    diffs = [a - b for a, b in pairs]
    rnd = list(first.values())
    return {
        "pairs": len(pairs),
        "mean_abs_diff": statistics.fmean(abs(d) for d in diffs),
        "single_training_sd": math.sqrt(statistics.fmean(d * d for d in diffs) / 2),
        "tau": kendall_tau([a for a, _ in pairs], [b for _, b in pairs]),
        "random_sd": statistics.stdev(rnd) if len(rnd) > 1 else math.nan,
    }
