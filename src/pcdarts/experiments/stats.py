"""The statistics a study reports: per-arm summaries, the exact one-sided Mann-Whitney U, the
probability of superiority, the comparison with random cells and the verdict.
"""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

from ..runs.environment import revision


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise_arms(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per arm: n, mean and std of test accuracy, min, max, mean params and parameter-free ops."""
    arms: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        arms.setdefault(c["arm"], []).append(c)
    rows = []
    for name, group in arms.items():
        acc = [c["test_accuracy"] for c in group]
        mean, std = _mean_std(acc)
        rows.append(
            {
                "arm": name,
                "kind": group[0]["kind"],
                "n": len(group),
                "mean": mean,
                "std": std,
                "min": min(acc),
                "max": max(acc),
                "params": statistics.fmean(c["params"] for c in group),
                "param_free_normal": statistics.fmean(c["param_free_normal"] for c in group),
                "param_free_reduce": statistics.fmean(c.get("param_free_reduce", math.nan) for c in group),
                **(
                    {"none_edges": statistics.fmean(c["none_edges"] for c in group)}
                    if all("none_edges" in c for c in group)
                    else {}
                ),
                "search_seconds": statistics.fmean(c.get("search_seconds", 0.0) for c in group),
                "train_seconds": statistics.fmean(c["train_seconds"] for c in group),
            }
        )
    return rows


def mann_whitney_greater(a: list[float], b: list[float]) -> tuple[float, str]:
    """One-sided Mann-Whitney U p-value for ``a`` > ``b`` and how it was computed.

    Exact: U's distribution over every way to split the pooled values into groups of len(a) and len(b),
    tied values at their mid-ranks, so ties (test accuracies move in steps of 1/10,000) are counted as they
    fall. The splits are counted by dynamic programming over the pooled values (how many subsets of each
    size reach each rank sum), so 6 against 60 cells (90 million splits) is as exact as 6 against 12.
    scipy's ``method="exact"`` looks U up in the distribution without ties: with ties its p is off (more
    often too large than too small); without ties the two agree.
    """
    from scipy.stats import rankdata

    n, m = len(a), len(b)
    twice = [int(round(2 * r)) for r in rankdata(list(a) + list(b))]  # mid-ranks are halves: exact integers
    observed = sum(twice[:n])
    ways: list[dict[int, int]] = [{0: 1}] + [{} for _ in range(n)]  # ways[k][s]: subsets of size k, rank sum s
    for r in twice:
        for k in range(n, 0, -1):
            for total, count in ways[k - 1].items():
                ways[k][total + r] = ways[k].get(total + r, 0) + count
    at_least = sum(count for total, count in ways[n].items() if total >= observed)
    return at_least / math.comb(n + m, n), "exact, ties at mid-ranks"


def superiority(a: list[float], b: list[float]) -> float:
    """Probability of superiority U / (n1 n2): the share of (a, b) pairs where a wins, ties counting half."""
    wins = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    return wins / (len(a) * len(b))


def compare_with_random(cells: list[dict[str, Any]], arm: str) -> dict[str, Any] | None:
    """An arm against the random cells on test accuracy: one-sided Mann-Whitney U (arm > random, exact) and
    the effect in random standard deviations. None until each side has two cells."""
    a = [c["test_accuracy"] for c in cells if c["arm"] == arm]
    r = [c["test_accuracy"] for c in cells if c["kind"] == "random"]
    if len(a) < 2 or len(r) < 2:
        return None
    (ma, _), (mr, sr) = _mean_std(a), _mean_std(r)
    p, how = mann_whitney_greater(a, r)
    return {
        "arm": arm,
        "n": len(a),
        "n_random": len(r),
        "margin": ma - mr,
        "effect_sd": (ma - mr) / sr if sr > 0 else math.nan,
        "superiority": superiority(a, r),
        "p_value": p,
        "test": f"one-sided Mann-Whitney U (arm > random), {how}",
    }


def recompute_comparisons(study: dict[str, Any]) -> dict[str, Any]:
    """A study.json's comparisons computed again from its cells by this revision's test (a study written by
    an older revision keeps its cells; only the statistics are redone)."""
    arms = [a["name"] for a in study["config"]["arms"]]
    if "comparisons_as_run" not in study:  # what the study's own revision wrote, kept beside for the record
        study["comparisons_as_run"] = study.get("comparisons", [])
    study["comparisons"] = [c for a in arms if (c := compare_with_random(study["cells"], a)) is not None]
    study["comparisons_revision"] = revision()
    return study


def primary_verdict(study: dict[str, Any]) -> str | None:
    """The pre-registered decision: the primary arm beats random iff p < 0.05 and the effect is >= 1 random SD."""
    primary = study.get("primary")
    comp = next((c for c in study.get("comparisons", []) if c["arm"] == primary), None)
    if primary is None:
        return None
    if comp is None:
        return f"primary arm {primary!r}: not enough cells yet to compare with random cells"
    if study.get("config", {}).get("rule", "effect") == "superiority":
        sup = comp.get("superiority", math.nan)
        beats = comp["p_value"] < 0.05 and sup >= 0.75
        return (
            f"primary arm {primary!r} ({comp['n']} cells) vs random ({comp['n_random']}): probability of superiority "
            f"{sup:.2f}, margin {100 * comp['margin']:+.2f} points ({comp['effect_sd']:+.2f} random SDs), one-sided "
            f"Mann-Whitney p = {comp['p_value']:.3g}: "
            + ("BEATS random cells (p < 0.05 and superiority >= 0.75)" if beats else "does NOT beat random cells")
        )
    beats = comp["p_value"] < 0.05 and comp["effect_sd"] >= 1.0
    return (
        f"primary arm {primary!r} ({comp['n']} cells) vs random ({comp['n_random']}): margin "
        f"{100 * comp['margin']:+.2f} points, effect {comp['effect_sd']:+.2f} random SDs, one-sided Mann-Whitney "
        f"p = {comp['p_value']:.3f}: "
        + ("BEATS random cells (p < 0.05 and effect >= 1 SD)" if beats else "does NOT beat random cells at this scale")
    )


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b (ties counted as in scipy.stats.kendalltau); NaN when either side is constant."""
    n = len(x)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denom if denom else math.nan


def bootstrap_tau(
    x: list[float], y: list[float], *, reps: int = 2000, level: float = 0.9, seed: int = 0
) -> tuple[float, float]:
    """A percentile bootstrap interval of Kendall tau, resampling cells with replacement (seeded)."""
    rng = random.Random(seed)
    n = len(x)
    taus = []
    for _ in range(reps):
        idx = [rng.randrange(n) for _ in range(n)]
        t = kendall_tau([x[i] for i in idx], [y[i] for i in idx])
        if not math.isnan(t):
            taus.append(t)
    if len(taus) < reps // 2:
        return math.nan, math.nan
    taus.sort()
    lo = taus[int(math.floor((1 - level) / 2 * (len(taus) - 1)))]
    hi = taus[int(math.ceil((1 + level) / 2 * (len(taus) - 1)))]
    return lo, hi
