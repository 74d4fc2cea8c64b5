"""``pcdarts report RUN_DIR``: one self-contained HTML page (images embedded) for a run."""

from __future__ import annotations

import base64
import html
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from ..errors import PCDartsError, RunError
from ..files import atomic_write_bytes, check_target, read_run_json
from ..nas.genotype import Genotype, GenotypeError
from ..runs.formats import read_epoch_log, read_result
from .plot import curves, plot_genotype
from .search import draw_search

log = logging.getLogger(__name__)


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


def build_report(run_dir: str | Path, out: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """Write the report page: ``out``, or ``RUN/report.html`` (the run's own report, replaced each time). An
    ``out`` that exists is replaced only with ``overwrite``, and never a run's own file."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ReportError(f"run folder {run} does not exist")
    if out is not None:
        try:
            check_target(out, overwrite=overwrite or Path(out) == run / "report.html", allowed=("report.html",))
        except RunError as exc:
            raise ReportError(str(exc)) from None
    if (run / "study.json").is_file():
        return _write_page(run, [_study_section(run)], out)
    search, trains = _find(run)
    if search is None and not trains:
        raise ReportError(f"{run} holds no search (arch_history.jsonl) or training (result.json) results")
    parts: list[str] = [f"<h1>pcdarts run report: {html.escape(str(run))}</h1>", _summary(search, trains)]
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        if search is not None:
            parts.append(_search_section(search, t))
        for tr in trains:
            parts.append(_train_section(tr, t))
    return _write_page(run, parts, out)


def _summary(search: Path | None, trains: list[Path]) -> str:
    """The figures people look for first: one row per run, before any picture."""
    rows = ["<table><tr><th>run</th><th>test accuracy</th><th>selected by</th><th>params</th><th>time</th>"
            "<th>parameter-free ops (normal)</th></tr>"]  # fmt: skip
    if search is not None:
        res = _json(search / "search_result.json")
        pf = "-"
        if res.get("genotype"):
            from ..nas.genotype import param_free_count

            g = _genotype(res["genotype"], [], "search_result.json")
            pf = "-" if g is None else str(param_free_count(g.normal))
        secs = f"{res['seconds'] / 60:.1f} min" if _is_num(res.get("seconds")) else "unfinished"
        rows.append(f"<tr><td>search ({html.escape(search.name)})</td><td>-</td><td>-</td><td>-</td><td>{secs}</td>"
                    f"<td>{pf}</td></tr>")  # fmt: skip
    for tr in trains:
        r = _json(tr / "result.json")
        acc = f"{100 * r['test_accuracy']:.2f} %" if _is_num(r.get("test_accuracy")) else "-"
        picked = html.escape(str(r.get("selected_by", "-"))[:40])
        params = f"{r['params']:,}" if _is_num(r.get("params")) else "-"
        secs = f"{r['seconds'] / 60:.1f} min" if _is_num(r.get("seconds")) else "-"
        g = _genotype(r.get("genotype"), [], "result.json") if r.get("genotype") else None
        from ..nas.genotype import param_free_count

        pf = "-" if g is None else str(param_free_count(g.normal))
        rows.append(
            f"<tr><td>training ({html.escape(tr.name)})</td><td>{acc}</td><td>{picked}</td>"
            f"<td>{params}</td><td>{secs}</td><td>{pf}</td></tr>"
        )
    return "\n".join(rows) + "</table>"


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _json(path: Path, warnings: list[str] | None = None) -> dict[str, Any]:
    """A run's JSON file, or {} when it is missing or damaged (said in ``warnings`` and on stderr)."""
    if not path.is_file():
        return {}
    try:  # results with their epochs from 1 in any format
        return read_result(path) if path.name.endswith("result.json") else read_run_json(path)
    except RunError as exc:
        log.warning("report: %s", exc)
        if warnings is not None:
            warnings.append(f"{path.name} could not be used ({exc})")
        return {}


def _write_page(run: Path, parts: list[str], out: str | Path | None) -> Path:
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>pcdarts report</title><style>"
        "body{font-family:sans-serif;max-width:1300px;margin:2em auto;padding:0 1em;color:#222}"
        "img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}pre{background:#f6f6f6;padding:0.8em;"
        "overflow-x:auto;font-size:12px;white-space:pre-wrap;word-break:break-all}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 10px}.warn{color:#a40}"
        "</style></head><body>" + "\n".join(parts) + "</body></html>"
    )
    target = Path(out) if out else run / "report.html"
    atomic_write_bytes(target, page.encode())
    return target


def _study_section(run: Path) -> str:
    """A study: the per-arm table, the verdict against random cells, the scatter plot, every cell."""
    from ..experiments.study import load_study
    from ..experiments.tables import verdict
    from .studies import plot_study

    study = load_study(run)
    cfg = study["config"]
    out = [f"<h1>pcdarts study: {html.escape(cfg['dataset'])} ({html.escape(str(run))})</h1>"]
    if not study.get("complete"):
        out.append("<p class='warn'>the study is not finished: the figures below cover the cells done so far.</p>")
    out.append(
        "<table><tr><th>arm</th><th>cells</th><th>test accuracy mean ± std</th><th>min</th><th>max</th>"
        "<th>mean params</th><th>param-free ops (normal)</th></tr>"
    )
    for r in study["arms"]:
        out.append(
            f"<tr><td>{html.escape(r['arm'])}</td><td>{r['n']}</td><td>{100 * r['mean']:.2f} ± {100 * r['std']:.2f} %"
            f"</td><td>{100 * r['min']:.2f} %</td><td>{100 * r['max']:.2f} %</td><td>{r['params']:,.0f}</td>"
            f"<td>{r['param_free_normal']:.1f}</td></tr>"
        )
    out.append(f"</table><p><b>{html.escape(verdict(study['arms']))}</b></p>")
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_study(study, Path(tmp) / "study.png")
        out.append(_img(png, "test accuracy against parameters"))
    out.append(
        "<h2>Cells</h2><table><tr><th>arm</th><th>seed</th><th>test accuracy</th><th>params</th>"
        "<th>param-free (normal)</th><th>normal cell</th></tr>"
    )
    for c in study["cells"]:
        normal = " ".join(f"{op}({i})" for op, i in c["genotype"]["normal"])
        out.append(
            f"<tr><td>{html.escape(c['arm'])}</td><td>{c['seed']}</td><td>{100 * c['test_accuracy']:.2f} %</td>"
            f"<td>{c['params']:,}</td><td>{c['param_free_normal']}</td><td><small>{html.escape(normal)}</small></td></tr>"
        )
    out.append("</table><h2>Protocol</h2>")
    out.append(f"<pre>{html.escape(json.dumps({'study': cfg, 'training': study.get('train_config')}, indent=2))}</pre>")
    return "\n".join(out)


def _read(path: Path, warnings: list[str]) -> list[dict[str, Any]]:
    """A per-epoch JSONL log, epochs from 1; unreadable lines are skipped and said so on the page."""
    rows, bad = read_epoch_log(path, count_bad=True)
    if bad:
        warnings.append(f"{path.name}: {bad} unreadable line(s) skipped")
    return rows


def _numeric_epoch(record: dict[str, Any], warnings: list[str]) -> bool:
    ok = isinstance(record.get("epoch"), int) and all(
        isinstance(v, (int, float, str, type(None))) for v in record.values()
    )
    if not ok and "metrics.jsonl: a line with a malformed epoch was skipped" not in warnings:
        warnings.append("metrics.jsonl: a line with a malformed epoch was skipped")
    return ok


def _search_section(search: Path, tmp: Path) -> str:
    warnings: list[str] = []
    history = _read(search / "arch_history.jsonl", warnings)
    metrics = _read(search / "metrics.jsonl", warnings)
    config = _json(search / "config.json", warnings)
    out = ["<h2>Search</h2>"]
    g = _genotype(_json(search / "genotype.json", warnings), warnings, "genotype.json")
    if g is None and history:
        g = _genotype(history[-1].get("genotype"), warnings, "arch_history.jsonl")
    drawn = draw_search(history, metrics, g, tmp, renderer="matplotlib")
    if g is not None:
        out += [
            "<h3>Derived genotype</h3>",
            f"<pre>{html.escape(g.to_text())}</pre>",
            _img(drawn.files["cells"], "cells"),
        ]
    if history:
        note = (
            f"the genotype stopped changing at epoch {drawn.stable_epoch}"
            if drawn.stable_epoch is not None
            else "the genotype still changed at the last epoch"
        )
        out += [
            "<h3>Architecture weights</h3>",
            _img(drawn.files["alpha_beta"], "alpha heatmaps"),
            f"<h3>Genotype timeline</h3><p>{note}.</p>",
            _img(drawn.files["timeline"], "timeline"),
        ]
    if metrics:
        out += ["<h3>Search curves</h3>", _img(drawn.files["curves"], "search curves")]
    out += ["<h3>Configuration</h3>", f"<pre>{html.escape(json.dumps(config, indent=2))}</pre>"]
    result = _json(search / "search_result.json", warnings)
    said = result.get("warnings", [])  # what the search warned about at its start
    learn = [str(w)[:400] for w in (said if isinstance(said, list) else []) if isinstance(w, str)]
    out[1:1] = [f"<p class='warn'>warning: {html.escape(w)}</p>" for w in warnings + learn]
    return "\n".join(out)


def _genotype(data: Any, warnings: list[str], where: str) -> Genotype | None:
    if not data:
        return None
    try:
        return Genotype.from_dict(data)
    except (GenotypeError, TypeError, ValueError, KeyError, AttributeError):
        warnings.append(f"{where}: its genotype is not a valid cell")
        log.warning("report: %s: its genotype is not a valid cell", where)
        return None


def _train_section(train: Path, tmp: Path) -> str:
    warnings: list[str] = []
    result: dict[str, Any] = _json(train / "result.json", warnings)
    metrics = [m for m in _read(train / "metrics.jsonl", warnings) if _numeric_epoch(m, warnings)]
    name = train.name
    out = [f"<h2>Training: {html.escape(name)}</h2>", "<table>"]
    result = dict(result)
    if isinstance(result.get("input"), list):
        result["input"] = " x ".join(str(v) for v in result["input"]) + " (channels x height x width)"
    classes = result.get("classes") if isinstance(result.get("classes"), list) else None
    if classes:
        result["classes"] = (
            f"{len(classes)}: " + ", ".join(str(c) for c in classes[:20]) + (" ..." * (len(classes) > 20))
        )
    if (result.get("num_classes") or 0) <= 5:
        result.pop("test_top5", None)  # always 1 with 5 classes or fewer
    keys = (
        "dataset",
        "classes",
        "input",
        "genotype_from",
        "test_accuracy",
        "test_top5",
        "selected_by",
        "selected_epoch",
        "val_accuracy",
        "params",
        "macs",
        "epochs",
        "seconds",
    )
    for key in keys:
        if result.get(key) is not None:
            v = result[key]
            if key == "seconds" and _is_num(v):  # read as a time, not as a float
                out.append(f"<tr><th>time</th><td>{v / 60:.1f} min ({v:,.0f} s)</td></tr>")
                continue
            shown = (
                html.escape(v) if isinstance(v, str) else f"{v:,}" if isinstance(v, int) else
                f"{v:.4f}" if isinstance(v, float) else html.escape(str(v)[:80])
            )  # fmt: skip
            out.append(f"<tr><th>{key}</th><td>{shown}</td></tr>")
    out.append("</table>")
    per_class = result.get("test_per_class")
    if isinstance(per_class, list) and per_class and len(per_class) <= 100:
        names = classes if classes and len(classes) == len(per_class) else [str(i) for i in range(len(per_class))]
        rows = "".join(
            f"<tr><td>{html.escape(str(n))}</td><td>{'-' if a is None else f'{100 * a:.1f} %'}</td></tr>"
            for n, a in zip(names, per_class)
        )
        out.append(f"<h3>Test accuracy per class</h3><table><tr><th>class</th><th>top-1</th></tr>{rows}</table>")
    g = _genotype(result.get("genotype"), warnings, "result.json")
    if g is not None:
        plot_genotype(g, tmp / f"{name}_cells.png", renderer="matplotlib")
        out += [f"<pre>{html.escape(g.to_text())}</pre>", _img(tmp / f"{name}_cells.png", "cells")]
    if metrics:
        curves(metrics, tmp / f"{name}_curves.png", name)
        out.append(_img(tmp / f"{name}_curves.png", f"{name} curves"))
    out[1:1] = [f"<p class='warn'>warning: {html.escape(w)}</p>" for w in warnings]  # every warning, at the top
    return "\n".join(out)
