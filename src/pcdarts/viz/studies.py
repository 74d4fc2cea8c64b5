"""Pictures of studies and calibrations: accuracy against parameters, the arms as an ablation, rankings across
budgets."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..files import atomic_save_figure


def plot_study(study: dict[str, Any], out: str | Path) -> Path:
    """Test accuracy against parameters: one colour per arm, random cells as a grey cloud."""
    import matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    colours = iter(matplotlib.colormaps["tab10"].colors)
    for row in study["arms"]:
        cells = [c for c in study["cells"] if c["arm"] == row["arm"]]
        xs = [c["params"] / 1e3 for c in cells]
        ys = [100 * c["test_accuracy"] for c in cells]
        if row["kind"] == "random":
            ax.scatter(xs, ys, s=40, c="0.6", alpha=0.7, label=f"random (n={len(cells)})", marker="o")
        else:
            ax.scatter(
                xs,
                ys,
                s=60,
                color=next(colours),
                label=f"{row['arm']} (n={len(cells)})",
                marker="D",
                edgecolors="k",
                linewidths=0.5,
            )
        ax.axhline(
            100 * row["mean"],
            color="0.6" if row["kind"] == "random" else ax.collections[-1].get_facecolor()[0],
            lw=0.8,
            ls="--",
        )
    ax.set_xlabel("parameters (thousands)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{study['config']['dataset']}: searched vs random cells (dashed: arm means)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out = Path(out)
    atomic_save_figure(fig, out, dpi=120)
    return out


def plot_fidelity(summary: dict[str, Any], out: str | Path) -> Path:
    """Each cell's validation accuracy across budgets, one line per cell (second seeds as open circles)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    first_seed = summary["config"]["train_seed"]
    by_cell: dict[int, list[tuple[int, float]]] = {}
    for r in summary["rows"]:
        if r["train_seed"] == first_seed:
            by_cell.setdefault(r["cell"], []).append((r["budget_epochs"], 100 * r["val_accuracy"]))
    for cell, pts in sorted(by_cell.items()):
        pts.sort()
        line = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", lw=1, ms=4, label=f"cell {cell}")
        for r in summary["rows"]:
            if r["cell"] == cell and r["train_seed"] != first_seed:
                ax.scatter([r["budget_epochs"]], [100 * r["val_accuracy"]], s=40, facecolors="none",
                           edgecolors=line[0].get_color(), zorder=3)  # fmt: skip
    budgets = summary["config"]["budgets"]
    ax.set_xscale("log", base=2)
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.set_xlabel("training epochs (each run's lr annealed to its own length)")
    ax.set_ylabel("validation accuracy (%)")
    taus = ", ".join(
        f"{b['epochs']}: {b['tau_vs_longest']:.2f}"
        for b in summary["budgets"][:-1]
        if not math.isnan(b["tau_vs_longest"])
    )
    ax.set_title(f"{summary['config']['dataset']}: random cells across budgets (tau vs longest: {taus or 'n/a'})",
                 fontsize=9)  # fmt: skip
    ax.grid(alpha=0.3)
    if len(by_cell) <= 16:
        ax.legend(fontsize=6, ncol=2, loc="lower right")
    fig.tight_layout()
    out = Path(out)
    atomic_save_figure(fig, out, dpi=120)
    return out


def plot_ablation(study: dict[str, Any], out: str | Path) -> Path:
    """The arms as an ablation: every cell's test accuracy per arm beside the random cells' (left), and where the
    arms vary two settings with two values each (K x edge normalisation), the 2 x 2 grid of their searched cells'
    median percentile among the random cells (right)."""
    import statistics

    import numpy as np
    from matplotlib.figure import Figure

    from ..experiments.analysis import ablation

    rows = ablation(study)
    rnd = [100 * c["test_accuracy"] for c in study["cells"] if c["kind"] == "random"]
    varied = sorted({k for r in rows for k in r["settings"]})
    values = {k: sorted({r["settings"][k] for r in rows}, key=str) for k in varied}
    grid = len(varied) == 2 and all(len(v) == 2 for v in values.values()) and len(rows) == 4
    fig = Figure(figsize=(11 if grid else 7, 4.5))
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]}) if grid else [fig.subplots()]
    ax = axes[0]
    names = ["random", *(r["arm"] for r in rows)]
    jitter = np.random.default_rng(0)
    for i, name in enumerate(names):
        ys = rnd if name == "random" else [100 * c["test_accuracy"] for c in study["cells"]
                                           if c["arm"] == name and c["kind"] == "searched"]  # fmt: skip
        if not ys:
            continue
        xs = i + jitter.uniform(-0.15, 0.15, len(ys))
        ax.scatter(xs, ys, s=18 if name == "random" else 40, c="0.6" if name == "random" else f"C{i}",
                   edgecolors="none" if name == "random" else "k", linewidths=0.5, alpha=0.8)  # fmt: skip
        ax.hlines(statistics.median(ys), i - 0.3, i + 0.3, colors="k", lw=1.5)
    ax.set_xticks(range(len(names)), [f"{n}\n(n={len(rnd) if n == 'random' else r['n']})"
                                      for n, r in zip(names, [None, *rows])], fontsize=8)  # fmt: skip
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("every cell, by arm (bars: medians)", loc="left", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    if grid:
        (row_key, col_key), g = varied, axes[1]
        mat = np.full((2, 2), np.nan)
        for r in rows:
            i, j = values[row_key].index(r["settings"][row_key]), values[col_key].index(r["settings"][col_key])
            mat[i, j] = r["median_percentile"]
            g.text(j, i, f"{r['arm']}\npercentile {r['median_percentile']:.0f}\n(n={r['n']})", ha="center", va="center",
                   fontsize=9)  # fmt: skip
        g.imshow(mat, cmap="RdYlGn", vmin=0, vmax=100)
        g.set_xticks([0, 1], [f"{col_key}={v}" for v in values[col_key]])
        g.set_yticks([0, 1], [f"{row_key}={v}" for v in values[row_key]])
        g.set_title("median percentile among the random cells", loc="left", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    atomic_save_figure(fig, out, dpi=120)
    return out
