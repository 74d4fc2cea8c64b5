"""Pictures of a search: cell diagrams, alpha/beta heatmaps, genotype timeline, curves.

Cell diagrams use Graphviz when both the ``graphviz`` package and the ``dot``
binary are present, and a pure matplotlib renderer otherwise (pip-only machines).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.colors
import matplotlib.patches
import matplotlib.ticker
import numpy as np
import torch
from matplotlib.figure import Figure  # figures without pyplot: no global backend switch, no window, no state

from ..errors import ConfigError
from ..files import atomic_save_figure, atomic_write_bytes
from ..nas.candidates import OPS, stored_ops
from ..nas.derive import node_edge_weights
from ..nas.genotype import Genotype, edge_name, none_count, param_free_count
from ..nas.space import steps_for

OP_COLOURS = {
    "max_pool_3x3": "#1f77b4",
    "avg_pool_3x3": "#17becf",
    "skip_connect": "#7f7f7f",
    "sep_conv_3x3": "#d62728",
    "sep_conv_5x5": "#ff7f0e",
    "sep_conv_7x7": "#bcbd22",
    "dil_conv_3x3": "#2ca02c",
    "dil_conv_5x5": "#9467bd",
    "conv_7x1_1x7": "#8c564b",
    "nor_conv_1x1": "#e377c2",
    "nor_conv_3x3": "#8c2d04",
    "none": "#cccccc",
}
_SPARE = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354")


def op_colour(op: str) -> str:
    """The colour an op is drawn in: fixed for the shipped ops, one of a spare set (stable per name) for others."""
    import zlib

    return OP_COLOURS.get(op) or _SPARE[zlib.crc32(op.encode()) % len(_SPARE)]


def graphviz_available() -> bool:
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


def _cell_positions(steps: int) -> dict[str, tuple[float, float]]:
    pos = {"c_{k-2}": (-0.6, 0.62), "c_{k-1}": (-0.6, 0.2)}  # left of node 0 with room for two labels
    for i in range(steps):
        pos[str(i)] = (1.0 + i, 0.9 - 0.8 * (i % 2))  # zig-zag keeps labels apart
    pos["c_{k}"] = (steps + 1.2, 0.5)
    return pos


def _arc_point(ax: Any, a: tuple[float, float], b: tuple[float, float], rad: float, t: float) -> tuple[float, float]:
    """The point at ``t`` on matplotlib's ``arc3`` curve from a to b (a quadratic Bezier built in display space)."""
    to_px, to_data = ax.transData.transform, ax.transData.inverted().transform
    (x1, y1), (x2, y2) = to_px(a), to_px(b)
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    px = (1 - t) ** 2 * x1 + 2 * (1 - t) * t * cx + t**2 * x2
    py = (1 - t) ** 2 * y1 + 2 * (1 - t) * t * cy + t**2 * y2
    return tuple(to_data((px, py)))


def draw_cell(ax: Any, pairs: tuple[tuple[str, int], ...], concat: tuple[int, ...], title: str) -> None:
    """Draw one cell as a DAG on a matplotlib axis: inputs left, output right, ops on the edges."""
    steps = len(pairs) // 2
    pos = _cell_positions(steps)
    names = ["c_{k-2}", "c_{k-1}"] + [str(i) for i in range(steps)]
    ax.set_xlim(-1.1, steps + 1.8)  # limits first: labels are placed on the curves in display space
    ax.set_ylim(-0.1, 1.1)
    placed: list[Any] = []
    for k, (op, src) in enumerate(pairs):
        a, b = pos[names[src]], pos[str(k // 2)]
        colour = op_colour(op)
        rad = 0.25 if k % 2 else -0.25
        ax.annotate(
            "",
            xy=b,
            xytext=a,
            arrowprops=dict(
                arrowstyle="-|>", color=colour, lw=1.8, connectionstyle=f"arc3,rad={rad}", shrinkA=14, shrinkB=14
            ),
        )
        # the point of the curve farthest from every node, so no label hides a node or sits on one
        to_px = ax.transData.transform
        avoid = [to_px(p) for p in pos.values()] + placed
        candidates = [_arc_point(ax, a, b, rad, t) for t in (0.5, 0.42, 0.58, 0.34, 0.66, 0.27, 0.73)]
        mx, my = max(candidates, key=lambda q: min(np.hypot(*(to_px(q) - n)) for n in avoid))
        placed.append(to_px((mx, my)))  # later labels keep away from this one too
        ax.text(
            mx,
            my,
            op,
            zorder=5,
            fontsize=7,
            color=colour,
            ha="center",
            va="center",
            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85),
        )
    for idx in concat:
        a = pos[names[idx]]
        ax.annotate(
            "",
            xy=pos["c_{k}"],
            xytext=a,
            arrowprops=dict(arrowstyle="-|>", color="#bbbbbb", lw=0.8, ls="--", shrinkA=14, shrinkB=16),
        )
    for name, (x, y) in pos.items():
        is_io = name.startswith("c_")
        ax.scatter([x], [y], s=900, c="#cfe8ff" if is_io else "#ffe9b3", edgecolors="black", zorder=3)
        ax.text(x, y, f"${name}$" if is_io else name, ha="center", va="center", fontsize=9, zorder=4)
    ax.set_title(title)
    ax.axis("off")


def draw_nb201_cell(ax: Any, genotype: Any, title: str) -> None:
    """Draw a NAS-Bench-201 cell: nodes 0 (input) to 3 (output) on a line, one arc per edge, ``none`` dashed."""
    from ..nas.nb201 import EDGES

    pos = {n: (1.6 * n, 0.5) for n in range(4)}
    ax.set_xlim(-0.7, 1.6 * 3 + 0.7)
    ax.set_ylim(-0.45, 1.75)
    bend = {(0, 2): 0.45, (1, 3): -0.45, (0, 3): -0.5}  # neighbours straight; longer edges bend apart
    for (op, src), (node, _) in zip(genotype.edges, EDGES):
        rad = bend.get((src, node), 0.0)
        cut = OPS[op].zero
        colour = op_colour(op)
        ax.annotate(
            "",
            xy=pos[node],
            xytext=pos[src],
            arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.0 if cut else 1.8, ls="--" if cut else "-",
                            connectionstyle=f"arc3,rad={rad}", shrinkA=15, shrinkB=15),
        )  # fmt: skip
        mx, my = _arc_point(ax, pos[src], pos[node], rad, 0.5)
        ax.text(mx, my, op, zorder=5, fontsize=7, color=colour, ha="center", va="center",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))  # fmt: skip
    for n, (x, y) in pos.items():
        io = n in (0, 3)
        ax.scatter([x], [y], s=900, c="#cfe8ff" if io else "#ffe9b3", edgecolors="black", zorder=3)
        ax.text(x, y, {0: "in", 3: "out"}.get(n, str(n)), ha="center", va="center", fontsize=9, zorder=4)
    ax.set_title(title)
    ax.axis("off")


def plot_genotype(genotype: Genotype, out: str | Path, *, renderer: str = "auto") -> str:
    """Write normal and reduction cells to ``out`` (.png/.svg/.pdf); returns the renderer used.

    A NAS-Bench-201 cell is one picture (it has no reduction cell), always drawn with matplotlib.
    """
    out = Path(out)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ConfigError(f"plot output must end in .png, .svg or .pdf, got {out.name}")
    if getattr(genotype, "cell", "darts") != "darts":
        out.parent.mkdir(parents=True, exist_ok=True)
        fig = Figure(figsize=(8, 4.5))
        ax = fig.subplots()
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.9)  # fixed before labels are placed
        draw_nb201_cell(ax, genotype, f"NAS-Bench-201 cell  {genotype.to_text()}")
        ax.title.set_fontsize(8)
        atomic_save_figure(fig, out, dpi=130)
        return "matplotlib"
    use_gv = renderer == "graphviz" or (renderer == "auto" and graphviz_available())
    if renderer == "graphviz" and not graphviz_available():
        raise ConfigError("graphviz renderer asked for, but the graphviz package or the dot binary is missing")
    out.parent.mkdir(parents=True, exist_ok=True)
    if use_gv:
        _plot_graphviz(genotype, out)
        return "graphviz"
    steps = max(genotype.steps, len(genotype.reduce) // 2)
    fig = Figure(figsize=(2.2 * steps + 3, 7))
    axes = fig.subplots(2, 1)
    for ax, t in zip(axes, ("normal cell", "reduction cell")):  # settle the layout before labels are placed
        ax.set_title(t)
        ax.axis("off")
    fig.tight_layout()
    draw_cell(axes[0], genotype.normal, genotype.normal_concat, "normal cell")
    draw_cell(axes[1], genotype.reduce, genotype.reduce_concat, "reduction cell")
    fig.tight_layout()
    atomic_save_figure(fig, out, dpi=130)
    return "matplotlib"


def _plot_graphviz(genotype: Genotype, out: Path) -> None:  # pragma: no cover - needs the dot binary
    import graphviz

    for kind in ("normal", "reduce"):
        pairs = getattr(genotype, kind)
        concat = getattr(genotype, kind + "_concat")
        g = graphviz.Digraph(graph_attr={"rankdir": "LR"})
        names = ["c_{k-2}", "c_{k-1}"] + [str(i) for i in range(len(pairs) // 2)]
        for n in names + ["c_{k}"]:
            g.node(n, style="filled", fillcolor="lightblue" if n.startswith("c_") else "lightyellow")
        for k, (op, src) in enumerate(pairs):
            g.edge(names[src], str(k // 2), label=op, color=op_colour(op))
        for idx in concat:
            g.edge(names[idx], "c_{k}", color="gray")
        target = out if kind == "normal" else out.with_name(out.stem + "_reduce" + out.suffix)
        atomic_write_bytes(target, g.pipe(format=out.suffix[1:].lower()))  # no DOT file left beside it


def alpha_heatmaps(history: list[dict[str, Any]], out: str | Path, epochs: list[int] | None = None) -> Path:
    """softmax(alpha) per edge and op, and softmax(beta) per node, for chosen epochs.

    ``epochs`` and the history's records count from 1, as the console and every run file do.
    """
    if not history:
        raise ConfigError("no alpha/beta history: run a search first (arch_history.jsonl is empty)")
    by_epoch = {h["epoch"]: h for h in history}
    missing = [e for e in epochs or [] if e not in by_epoch]
    if missing:
        raise ConfigError(f"no epoch {missing[0]} in this search: it has epochs {min(by_epoch)}..{max(by_epoch)}")
    epochs = epochs or [history[0]["epoch"], history[len(history) // 2]["epoch"], history[-1]["epoch"]]
    epochs = list(dict.fromkeys(epochs))
    cells = ("normal",) if history[-1].get("cell") == "nasbench201" else ("normal", "reduce")
    fig = Figure(figsize=(8 * len(cells), 3.6 * len(epochs)))
    axes = fig.subplots(len(epochs), 2 * len(cells), squeeze=False, gridspec_kw={"width_ratios": [4, 1] * len(cells)})
    for row, e in enumerate(epochs):
        h = by_epoch[e]
        for col, cell in enumerate(cells):
            a = torch.softmax(torch.tensor(h[f"alphas_{cell}"]), dim=-1).numpy()
            n_edges = a.shape[0]
            names = tuple(stored_ops(h))  # the history's op space
            if len(names) != a.shape[1]:
                raise ConfigError(
                    f"epoch {e}: alpha has {a.shape[1]} columns but the stored op space {len(names)} "
                    f"({', '.join(names)}): the history is damaged or from another search"
                )
            betas = torch.tensor(h[f"betas_{cell}"]) if f"betas_{cell}" in h else torch.zeros(n_edges)  # no edge norm
            if h.get("cell") == "nasbench201":
                from ..nas.nb201_search import nb201_edge_weights

                b, labels = nb201_edge_weights(betas).numpy(), _nb201_edge_labels()
            else:
                steps = steps_for(n_edges)
                b, labels = node_edge_weights(betas, steps).numpy(), _edge_labels(steps)
            ax = axes[row][2 * col]
            im = ax.imshow(a, aspect="auto", cmap="viridis")
            ax.set_xticks(range(len(names)), list(names), rotation=40, ha="right", fontsize=7)
            ax.set_yticks(range(n_edges), labels, fontsize=6)
            ax.set_title(f"epoch {e}: softmax(alpha)" + ("" if len(cells) == 1 else f" {cell}"), fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.04)
            axb = axes[row][2 * col + 1]
            im2 = axb.imshow(b[:, None], aspect="auto", cmap="magma", vmin=0, vmax=1)
            axb.set_xticks([])
            axb.set_yticks(range(n_edges), labels, fontsize=6)
            axb.set_title("edge weight", fontsize=9)
            fig.colorbar(im2, ax=axb, fraction=0.2)
    fig.tight_layout()
    out = Path(out)
    atomic_save_figure(fig, out, dpi=110)
    return out


def _nb201_edge_labels() -> list[str]:
    from ..nas.nb201 import EDGES

    return [f"node {src} -> node {node}" for node, src in EDGES]


def _edge_labels(steps: int) -> list[str]:
    """Alpha's rows in order (node by node), named as the text and the other plots name them."""
    return [edge_name(j, i) for i in range(steps) for j in range(i + 2)]


def genotype_timeline(history: list[dict[str, Any]], out: str | Path) -> tuple[Path, int | None]:
    """Derived op per genotype slot per epoch, plus parameter-free op counts (collapse warning).

    Returns the picture and the first epoch after which the genotype never changed.
    """
    if not history:
        raise ConfigError("no alpha/beta history to draw")
    epochs = [h["epoch"] for h in history]
    genos = [Genotype.from_dict(h["genotype"]) for h in history]
    space = tuple(stored_ops(history[-1]))  # the searched ops
    seen = {op for g in genos for op, _ in g.normal + g.reduce}
    ops = [op for op in space if not (op in OPS and OPS[op].zero)]
    ops += sorted(seen - set(ops))
    stable = None  # the first epoch from which the genotype never changed; None if it changed at the last epoch
    for i in range(len(genos) - 1):
        if all(g == genos[-1] for g in genos[i:]):
            stable = epochs[i]
            break
    nb201 = getattr(genos[-1], "cell", "darts") == "nasbench201"
    if nb201:  # every op of the space can be derived, none included
        ops = list(space) + sorted(seen - set(space))
    cells = ("normal",) if nb201 else ("normal", "reduce")
    fig = Figure(figsize=(max(6, 0.5 * len(epochs) + 4), 6 if nb201 else 9))
    axes = fig.subplots(len(cells) + 1, 1, gridspec_kw={"height_ratios": [3] * len(cells) + [2]})
    for ax, cell in zip(axes[:-1], cells):
        mat = np.array([[ops.index(op) for op, _ in getattr(g, cell)] for g in genos]).T  # (slots, epochs)
        cmap = matplotlib.colors.ListedColormap([op_colour(o) for o in ops])
        ax.imshow(mat, aspect="auto", cmap=cmap, vmin=-0.5, vmax=len(ops) - 0.5, interpolation="nearest")
        if nb201:
            labels = _nb201_edge_labels()
        else:
            labels = [edge_name(i, k // 2) for k, (_, i) in enumerate(getattr(genos[-1], cell))]
        ax.set_yticks(range(mat.shape[0]), labels, fontsize=7)
        ax.set_xticks(range(len(epochs)), epochs, fontsize=7)
        ax.set_title(
            f"derived {'NAS-Bench-201' if nb201 else cell} cell per epoch"
            + (f" (stable from epoch {stable})" if stable is not None else ""),
            loc="left",
            fontsize=10,
        )
    handles = [matplotlib.patches.Patch(color=op_colour(o), label=o) for o in ops]
    axes[0].legend(handles=handles, fontsize=6, ncol=4, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    last = axes[-1]
    if nb201:
        last.plot(epochs, [param_free_count(g.normal) for g in genos], "o-", label="parameter-free")
        last.plot(epochs, [none_count(g.normal) for g in genos], "s-", label="none (cut edges)")
    else:
        pf = [[param_free_count(getattr(g, c)) for g in genos] for c in ("normal", "reduce")]
        last.plot(epochs, pf[0], "o-", label="normal")
        last.plot(epochs, pf[1], "s-", label="reduce")
    last.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    last.set_ylabel("ops" if nb201 else "parameter-free ops")
    last.set_xlabel("epoch")
    last.set_title("parameter-free ops per epoch (rising = collapse warning)", loc="left", fontsize=10)
    last.legend()
    fig.tight_layout()
    out = Path(out)
    atomic_save_figure(fig, out, dpi=110)
    return out, stable


def curves(metrics: list[dict[str, Any]], out: str | Path, title: str = "") -> Path:
    """Loss and accuracy, learning rate, and step time per epoch, from any run's metrics.jsonl."""
    if not metrics:
        raise ConfigError("no metrics to draw: metrics.jsonl is empty")
    ep = [m["epoch"] for m in metrics]  # counted from 1 (read with formats.read_epoch_log for old runs)
    fig = Figure(figsize=(18, 3.8))
    axes = fig.subplots(1, 4)
    for ax, keys in ((axes[0], ("train_loss", "val_loss", "arch_loss")), (axes[1], ("train_acc", "val_acc"))):
        for key in keys:
            rows = [m for m in metrics if key in m]
            if rows:  # markers, so a series of one point (arch loss after a late warm-up) is still drawn
                ax.plot([m["epoch"] for m in rows], [m[key] for m in rows], "o-", ms=3, label=key)
    axes[2].plot(ep, [m.get("lr", np.nan) for m in metrics], "o-", ms=3)
    axes[3].plot(ep, [m.get("step_seconds", np.nan) for m in metrics], "o-", ms=3)
    for ax, t in zip(axes, ("loss", "accuracy", "learning rate", "seconds per step")):
        ax.set_title(f"{title} {t}".strip())
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    for ax in axes[:2]:
        if ax.get_legend_handles_labels()[0]:  # a damaged log may hold no series for a panel
            ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(out)
    atomic_save_figure(fig, out, dpi=110)
    return out
