"""``pcdarts report RUN_DIR``: one self-contained HTML page (images embedded) for a run."""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path
from typing import Any

from .errors import PCDartsError
from .genotype import Genotype
from .plot import alpha_heatmaps, curves, genotype_timeline, plot_genotype
from .runs import atomic_write_bytes, read_jsonl


class ReportError(PCDartsError, ValueError):
    pass


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _find(run: Path) -> tuple[Path | None, list[Path]]:
    """The search folder and the train folders under (or at) ``run``."""
    search = run if (run / "arch_history.jsonl").is_file() else None
    if search is None and (run / "search" / "arch_history.jsonl").is_file():
        search = run / "search"
    trains = [p for p in [run, *sorted(q for q in run.iterdir() if q.is_dir())] if (p / "result.json").is_file()]
    return search, trains


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    run = Path(run_dir)
    if not run.is_dir():
        raise ReportError(f"run folder {run} does not exist")
    search, trains = _find(run)
    if search is None and not trains:
        raise ReportError(f"{run} holds no search (arch_history.jsonl) or training (result.json) results")
    parts: list[str] = [f"<h1>pcdarts run report: {html.escape(str(run))}</h1>"]
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        if search is not None:
            parts.append(_search_section(search, t))
        for tr in trains:
            parts.append(_train_section(tr, t))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>pcdarts report</title><style>"
        "body{font-family:sans-serif;max-width:1300px;margin:2em auto;padding:0 1em;color:#222}"
        "img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}pre{background:#f6f6f6;padding:0.8em;"
        "overflow-x:auto;font-size:12px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px}"
        "</style></head><body>" + "\n".join(parts) + "</body></html>"
    )
    target = Path(out) if out else run / "report.html"
    atomic_write_bytes(target, page.encode())
    return target


def _search_section(search: Path, tmp: Path) -> str:
    history = read_jsonl(search / "arch_history.jsonl")
    metrics = read_jsonl(search / "metrics.jsonl")
    config = json.loads((search / "config.json").read_text()) if (search / "config.json").is_file() else {}
    out = ["<h2>Search</h2>"]
    if (search / "genotype.json").is_file():
        g = Genotype.from_dict(json.loads((search / "genotype.json").read_text()))
    elif history:
        g = Genotype.from_dict(history[-1]["genotype"])
    else:
        g = None
    if g is not None:
        plot_genotype(g, tmp / "cells.png", renderer="matplotlib")
        out += ["<h3>Derived genotype</h3>", f"<pre>{html.escape(g.to_text())}</pre>", _img(tmp / "cells.png", "cells")]
    if history:
        alpha_heatmaps(history, tmp / "alpha.png")
        _, stable = genotype_timeline(history, tmp / "timeline.png")
        note = (
            f"the genotype stopped changing at epoch {stable}" if stable is not None else "the genotype never settled"
        )
        out += [
            "<h3>Architecture weights</h3>",
            _img(tmp / "alpha.png", "alpha heatmaps"),
            f"<h3>Genotype timeline</h3><p>{note}.</p>",
            _img(tmp / "timeline.png", "timeline"),
        ]
    if metrics:
        curves(metrics, tmp / "search_curves.png", "search")
        out += ["<h3>Search curves</h3>", _img(tmp / "search_curves.png", "search curves")]
    out += ["<h3>Configuration</h3>", f"<pre>{html.escape(json.dumps(config, indent=2))}</pre>"]
    return "\n".join(out)


def _train_section(train: Path, tmp: Path) -> str:
    result: dict[str, Any] = json.loads((train / "result.json").read_text())
    metrics = read_jsonl(train / "metrics.jsonl")
    name = train.name
    out = [f"<h2>Training: {html.escape(name)}</h2>", "<table>"]
    for key in ("test_accuracy", "test_top5", "best_test_accuracy", "params", "macs", "epochs", "seconds"):
        if key in result:
            v = result[key]
            shown = f"{v:,}" if isinstance(v, int) else f"{v:.4f}"
            out.append(f"<tr><th>{key}</th><td>{shown}</td></tr>")
    out.append("</table>")
    g = Genotype.from_dict(result["genotype"])
    plot_genotype(g, tmp / f"{name}_cells.png", renderer="matplotlib")
    out += [f"<pre>{html.escape(g.to_text())}</pre>", _img(tmp / f"{name}_cells.png", "cells")]
    if metrics:
        curves(metrics, tmp / f"{name}_curves.png", name)
        out.append(_img(tmp / f"{name}_curves.png", f"{name} curves"))
    return "\n".join(out)
