"""A study's tables and times as Markdown for its results page."""

from __future__ import annotations

import math
from typing import Any


def format_table(rows: list[dict[str, Any]], *, reduce: bool = False) -> str:
    """The per-arm table as Markdown (accuracies in %); ``reduce`` adds the reduction cell's parameter-free ops.
    Rows of NAS-Bench-201 cells (one cell type, edges that may be ``none``) show their ``none`` edges instead."""
    one_cell = bool(rows) and all("none_edges" in r for r in rows)
    head = "| arm | cells | test accuracy mean ± std | min | max | mean params |"
    if one_cell:
        head += " param-free ops per cell (skips, pools) | `none` edges per cell |"
    else:
        head += " param-free ops (normal) |" + (" param-free ops (reduce) |" if reduce else "")
    lines = [head, "|---" * head.count(" |") + "|"]
    for r in rows:
        line = (
            f"| {r['arm']} | {r['n']} | {100 * r['mean']:.2f} ± "
            + (f"{100 * r['std']:.2f} %" if r["n"] > 1 else "n/a (one cell)")
            + f" | {100 * r['min']:.2f} % | {100 * r['max']:.2f} % | {r['params']:,.0f} |"
            + f" {r['param_free_normal']:.1f} |"
        )
        if one_cell:
            line += f" {r['none_edges']:.1f} |"
        elif reduce:
            line += f" {r.get('param_free_reduce', math.nan):.1f} |"
        lines.append(line)
    return "\n".join(lines)


def format_comparisons(study: dict[str, Any]) -> str:
    """Every searched arm against the random cells, the pre-registered primary first; the others are marked
    secondary (no correction for several tests is claimed, and they do not decide the verdict)."""
    primary = study.get("primary")
    comps = sorted(study.get("comparisons", []), key=lambda c: c["arm"] != primary)
    if not comps:
        return "No searched arm has two cells yet: no comparison with the random cells."
    as_run = {c["arm"]: c for c in study.get("comparisons_as_run", [])}
    if all(c.get("test") == next((d.get("test") for d in comps if d["arm"] == a), None) for a, c in as_run.items()):
        as_run = {}  # computed the same way: nothing to show beside
    sup = all("superiority" in c for c in comps)  # U / (n1 n2): a searched cell beats a random one this often
    extra = " probability of superiority |" * sup + " p as the study's revision wrote it |" * bool(as_run)
    head = "| arm | role | cells | random cells | margin | effect (random SDs) | one-sided Mann-Whitney p |" + extra
    lines = [head, "|---" * head.count(" |") + "|"]
    for c in comps:
        role = "**primary**" if c["arm"] == primary else "secondary"
        old = as_run.get(c["arm"])
        lines.append(
            f"| {c['arm']} | {role} | {c['n']} | {c['n_random']} | {100 * c['margin']:+.2f} points | "
            f"{c['effect_sd']:+.2f} | {c['p_value']:.3f} |"
            + (f" {c['superiority']:.2f} |" if sup else "")
            + ((f" {old['p_value']:.3f} |" if old else " - |") if as_run else "")
        )
    tests = sorted({c.get("test", "") for c in comps} - {""})
    note = "\n\np: " + "; ".join(tests) + "." if tests else ""
    if as_run:
        runs = sorted({c.get("test", "") for c in as_run.values()} - {""})
        note += " The last column is the p-value that the study's own revision wrote, by its test: "
        note += ("; ".join(runs) or "not recorded") + "."
    return "\n".join(lines) + note


def format_cells(study: dict[str, Any]) -> str:
    """Every cell of a study as a Markdown table: arm, seeds, accuracies, size, parameter-free ops, the cells."""
    lines = [
        "| arm | seed | test accuracy | val accuracy | params | param-free (normal / reduce) | epochs | normal cell "
        "| reduction cell |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    if any(c.get("cell") == "nasbench201" for c in study["cells"]):
        return _format_nb201_cells(study)
    for c in study["cells"]:
        g = c["genotype"]
        val = f"{100 * c['val_accuracy']:.2f} %" if c.get("val_accuracy") is not None else "-"
        lines.append(
            f"| {c['arm']} | {c['seed']} | {100 * c['test_accuracy']:.2f} % | {val} | {c['params']:,} | "
            f"{c['param_free_normal']} / {c.get('param_free_reduce', '-')} | {c.get('budget_epochs', '-')} | "
            + ", ".join(f"{op}({i})" for op, i in g["normal"])
            + " | "
            + ", ".join(f"{op}({i})" for op, i in g["reduce"])
            + " |"
        )
    return "\n".join(lines)


def _format_nb201_cells(study: dict[str, Any]) -> str:
    """``format_cells`` for the NAS-Bench-201 cell: one cell a row, in NAS-Bench-201's string form."""
    head = "| arm | seed | training seed | test accuracy | hold-out accuracy | params | param-free ops | `none` edges |"
    lines = [head + " cell |", "|---" * 9 + "|"]
    for c in study["cells"]:
        held = c.get("holdout_accuracy")
        lines.append(
            f"| {c['arm']} | {c['seed']} | {c.get('train_seed', '-')} | {100 * c['test_accuracy']:.2f} % | "
            + (f"{100 * held:.2f} %" if held is not None else "-")
            + f" | {c['params']:,} | {c['param_free_normal']} | {c.get('none_edges', '-')} | "
            f"`{c['genotype']['arch']}` |"
        )
    return "\n".join(lines)


def time_by_part(study: dict[str, Any], fidelity: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Wall and CPU time of each part of a study, counted once however many arms share a run: the calibration's
    trainings (which a study reuses as its random arm), the searches, the perturbation-based selections, and the
    trainings not already counted. Each run uses the threads it was given (one in the studies here). A part's
    CPU time is None when any of its runs was made before CPU time was kept."""
    Time = tuple[float, float | None]  # wall, CPU
    calibrated: dict[Any, Time] = {
        r["train_run"]: (r["train_seconds"], r.get("train_cpu_seconds")) for r in (fidelity or {}).get("rows", [])
    }
    searches: dict[Any, Time] = {}
    selections: dict[Any, Time] = {}
    trainings: dict[Any, Time] = {}
    for c in study["cells"]:
        if c["kind"] == "searched":
            select = (c.get("select_seconds", 0.0), c.get("select_cpu_seconds"))
            run = c.get("search_run", f"{c['arm']}-{c['seed']}")
            if "search_run_seconds" in c:  # the whole shared search, however many epochs this arm read
                search = (c["search_run_seconds"], c.get("search_run_cpu_seconds"))
            else:  # cells of the first study format: the longest reading is the best estimate
                cpu = c.get("search_cpu_seconds")
                search = (c.get("search_seconds", 0.0) - select[0], None if cpu is None else cpu - (select[1] or 0.0))
                if "selection" in c and select[1] is None:
                    search = (search[0], None)
            if search[0] >= searches.get(run, (-1.0, None))[0]:
                searches[run] = search
            if "selection" in c:
                selections[run, c["selection"]] = select
        if c["train_run"] not in calibrated:
            trainings[c["train_run"]] = (c["train_seconds"], c.get("train_cpu_seconds"))
    parts = [
        ("calibration trainings", calibrated),
        ("searches", searches),
        ("selections (DARTS-PT)", selections),
        ("trainings of searched cells" if calibrated else "trainings", trainings),
    ]
    out = []
    for name, runs in parts:
        if runs:
            cpus = [cpu for _, cpu in runs.values()]
            cpu_total = None if any(c is None for c in cpus) else float(sum(cpus))
            wall = float(sum(w for w, _ in runs.values()))
            out.append({"part": name, "runs": len(runs), "seconds": wall, "cpu_seconds": cpu_total})
    return out


def format_times(parts: list[dict[str, Any]]) -> str:
    """``time_by_part`` as a Markdown table in hours: each run's own wall and CPU time, summed (runs that
    went on at the same time add up, so two processes sharing a part finish it in about half the wall sum)."""

    def cpu(seconds: float | None) -> str:
        return "not recorded" if seconds is None else f"{seconds / 3600:.1f}"

    lines = ["| part | runs | summed run time (wall, h) | summed CPU time (h) |", "|---|---|---|---|"]
    for p in parts:
        lines.append(f"| {p['part']} | {p['runs']} | {p['seconds'] / 3600:.1f} | {cpu(p.get('cpu_seconds'))} |")
    total = sum(p["seconds"] for p in parts)
    cpus = [p.get("cpu_seconds") for p in parts]
    recorded = [c for c in cpus if c is not None]
    cpu_all = cpu(sum(recorded)) + (" (recorded parts)" if recorded and len(recorded) < len(cpus) else "")
    if not recorded:
        cpu_all = "not recorded"
    lines.append(f"| all | {sum(p['runs'] for p in parts)} | {total / 3600:.1f} | {cpu_all} |")
    return "\n".join(lines)


def verdict(rows: list[dict[str, Any]]) -> str:
    """Does any searched arm's mean beat the random mean by more than the random arm's std?"""
    rnd = next((r for r in rows if r["kind"] == "random"), None)
    searched = [r for r in rows if r["kind"] == "searched"]
    if rnd is None or not searched or rnd["n"] < 2:
        return "not enough cells yet to compare with random cells"
    best = max(searched, key=lambda r: r["mean"])
    margin = best["mean"] - rnd["mean"]
    beats = margin > rnd["std"]
    return (
        f"best searched arm {best['arm']!r}: {100 * best['mean']:.2f} % vs random {100 * rnd['mean']:.2f} % "
        f"(margin {100 * margin:+.2f} points, random std {100 * rnd['std']:.2f}): "
        + ("beats random by more than the random spread" if beats else "does NOT beat random by more than its spread")
    )


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.2f} %"


def format_analysis(study: dict[str, Any], folder: Any, arm: str) -> str:
    """``experiments.analysis`` as Markdown: the arms as an ablation with median percentiles, each searched
    cell's percentile, cost-matched random search for ``arm``, one-shot ranking and the noise floor."""
    from .analysis import ablation, cost_matched_random_search, noise_floor, oneshot_ranking, percentiles

    rows = ablation(study)
    keys = list(rows[0]["settings"]) if rows else []
    lines = ["| arm | " + " | ".join(keys) + " | cells | test accuracy mean ± std | median percentile among random |",
             "|---" * (len(keys) + 4) + "|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['arm']} | " + " | ".join(str(r["settings"][k]) for k in keys)
            + f" | {r['n']} | {_pct(r['mean'])} ± {_pct(r['std'])} | {r['median_percentile']:.1f} |"
        )  # fmt: skip
    out = ["\n".join(lines)]
    cells = percentiles(study)
    out.append("Each searched cell's percentile among the random cells (ties half): " + "; ".join(
        f"{arm_name} " + ", ".join(f"{c['percentile']:.0f}" for c in cells if c["arm"] == arm_name)
        for arm_name in dict.fromkeys(c["arm"] for c in cells)) + ".")  # fmt: skip
    cm = cost_matched_random_search(study, arm)
    if cm is not None:
        out.append(
            f"Cost-matched random search: one `{arm}` search and its training cost as much CPU time as {cm['k']} "
            f"random cells' trainings; the best of {cm['k']} random cells by hold-out accuracy reaches "
            f"{_pct(cm['mean'])} test accuracy on average ({100 * cm['interval_share']:.0f} % interval "
            f"{_pct(cm['interval'][0])} to {_pct(cm['interval'][1])}, {cm['draws']:,} bootstrap draws), against "
            f"{_pct(cm['arm_mean'])} for `{arm}`."
        )
    one = oneshot_ranking(study, folder)
    if one is not None:
        out.append(
            f"One-shot ranking: Kendall tau-b between each supernet's one-shot scores of the random cells and their "
            f"stand-alone hold-out accuracy, mean {one['mean_tau_holdout']:+.2f} over {len(one['supernets'])} "
            "supernets ("
            + ", ".join(f"{r['tau_holdout']:+.2f}" for r in one["supernets"])
            + f"); against test accuracy {one['mean_tau_test']:+.2f} ("
            + ", ".join(f"{r['tau_test']:+.2f}" for r in one["supernets"])
            + ")."
        )
    nf = noise_floor(study)
    if nf is not None:
        out.append(
            f"Noise floor: {nf['pairs']} random cells trained twice differ by {_pct(nf['mean_abs_diff'])} on "
            f"average; one training's SD {_pct(nf['single_training_sd'])} (root mean square difference / sqrt 2), "
            f"against an SD of {_pct(nf['random_sd'])} among the random cells; Kendall tau-b between the two "
            f"trainings {nf['tau']:+.2f}."
        )
    return "\n\n".join(out)


def format_fidelity(summary: dict[str, Any]) -> str:
    """The per-budget table as Markdown (validation accuracy in %)."""
    lines = [
        "| epochs | cells | Kendall tau vs longest (90 % CI) | val accuracy mean ± std | min | max |",
        "|---|---|---|---|---|---|",
    ]
    for b in summary["budgets"]:
        lo, hi = b["tau_90ci"]
        lines.append(
            f"| {b['epochs']} | {b['cells']} | {b['tau_vs_longest']:.2f} ({lo:.2f} to {hi:.2f}) | "
            f"{100 * b['val_mean']:.2f} ± {100 * b['val_std']:.2f} % | {100 * b['val_min']:.2f} % | "
            f"{100 * b['val_max']:.2f} % |"
        )
    s = summary["seed"]
    lo, hi = s["tau_90ci"]
    lines.append("")
    lines.append(
        f"Seed to seed ({s['cells']} cells at {s['budget_epochs']} epochs): tau {s['tau']:.2f} ({lo:.2f} to "
        f"{hi:.2f}), mean |difference| {100 * s['mean_abs_diff']:.2f} points."
    )
    chosen = summary.get("chosen_budget")
    lines.append(
        f"Chosen budget ({summary['rule']}): {chosen} epochs."
        if chosen is not None
        else "Calibration not complete yet: no budget chosen."
    )
    return "\n".join(lines)
