"""Copy a study's results into the docs: its study.json and pictures, and the tables in the README and STUDY.md.

    python studies/tools/study_docs.py docs/study/fmnist-cpu                  # Study I
    python studies/tools/study_docs.py docs/study2/fmnist --name study2       # Study II and its calibration
    python studies/tools/study_docs.py docs/study2/fmnist --name study2 --calibration-only   # the calibration alone
    python studies/tools/study_docs.py docs/study3/fmnist --name study3       # Study III, once it is complete

Rewrites only the text between marker pairs such as <!-- study-table --> and <!-- /study-table -->: for
Study I ``study-table`` (README and STUDY.md) and ``study-cells``; for Study II ``study2-table``,
``study2-fidelity``, ``study2-cells`` and ``study2-times`` in STUDY.md, and ``study2-table`` in the README once
the README has that block (the headline moves there when the study is complete). ``--calibration-only``
publishes the finished calibration (``study2-fidelity`` and its picture) while the study itself still runs, so
no partial arm table is published before the study is complete. Study III (``study3-table``,
``study3-analysis``, ``study3-cells``, ``study3-times`` in STUDY.md, and ``docs/study3/study.json``) is refused
until its study.json says it is complete: its plan gives no reading of the results before then.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pcdarts.experiments.stats import primary_verdict, recompute_comparisons
from pcdarts.experiments.study import load_study
from pcdarts.experiments.tables import (
    format_cells,
    format_comparisons,
    format_table,
    format_times,
    time_by_part,
    verdict,
)
from pcdarts.viz.studies import plot_ablation, plot_study

ROOT = Path(__file__).resolve().parents[2]


def _block(path: Path, page: str, marker: str) -> tuple[int, int]:
    """Where the text between ``<!-- marker -->`` and ``<!-- /marker -->`` starts and ends in ``page``."""
    start, end = f"<!-- {marker} -->\n", f"<!-- /{marker} -->"
    i = page.find(start)
    j = page.find(end, i + len(start)) if i >= 0 else -1
    if i < 0 or j < 0:
        raise SystemExit(f"{path} has no <!-- {marker} --> ... <!-- /{marker} --> block: add one where it goes")
    return i + len(start), j


def _replace(path: Path, marker: str, text: str) -> None:
    page = path.read_text()
    i, j = _block(path, page, marker)
    path.write_text(page[:i] + text + "\n" + page[j:])


def _partial(study: dict) -> str:
    return "" if study.get("complete") else f"\n\n(partial: {len(study['cells'])} cells so far; the study continues)"


def study1(folder: Path, root: Path) -> str:
    study = load_study(folder)
    out = root / "docs" / "study"
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(study, indent=2) + "\n")
    plot_study(study, out / "study.png")
    table = format_table(study["arms"]) + "\n\n" + verdict(study["arms"]) + "." + _partial(study)
    if "<!-- study-table -->" in (root / "README.md").read_text():  # the README links the studies' page now
        _replace(root / "README.md", "study-table", table)
    _replace(root / "docs" / "STUDY.md", "study-table", table)
    _replace(root / "docs" / "STUDY.md", "study-cells", format_cells(study))
    return table


def calibration2(folder: Path, root: Path) -> str:
    """Only Study II's calibration: the ``study2-fidelity`` block and ``docs/study2/fidelity.png``."""
    from pcdarts.experiments.fidelity import load_fidelity
    from pcdarts.experiments.tables import format_fidelity
    from pcdarts.viz.studies import plot_fidelity

    fidelity = load_fidelity(folder)
    if fidelity.get("chosen_budget") is None:
        raise SystemExit(f"study_docs: the calibration in {folder} is not finished (no budget chosen): nothing written")
    page = root / "docs" / "STUDY.md"
    _block(page, page.read_text(), "study2-fidelity")
    out = root / "docs" / "study2"
    out.mkdir(parents=True, exist_ok=True)
    plot_fidelity(fidelity, out / "fidelity.png")
    text = format_fidelity(fidelity)
    _replace(page, "study2-fidelity", text + "\n\n![calibration](study2/fidelity.png)")
    return text


def study2(folder: Path, root: Path) -> str:
    from pcdarts.experiments.fidelity import load_fidelity
    from pcdarts.experiments.tables import format_fidelity
    from pcdarts.viz.studies import plot_fidelity

    study = recompute_comparisons(load_study(folder))  # the statistics by this revision's test
    fidelity = load_fidelity(folder) if (folder / "fidelity.json").is_file() else None
    page = root / "docs" / "STUDY.md"
    for marker in ("study2-fidelity",) * (fidelity is not None) + ("study2-table", "study2-cells", "study2-times"):
        _block(page, page.read_text(), marker)  # every block checked before anything is written
    out = root / "docs" / "study2"
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(study, indent=2) + "\n")
    plot_study(study, out / "study.png")
    if fidelity is not None:
        plot_fidelity(fidelity, out / "fidelity.png")
        _replace(page, "study2-fidelity", format_fidelity(fidelity) + "\n\n![calibration](study2/fidelity.png)")
    decision = primary_verdict(study) or "no primary arm was named"
    table = format_table(study["arms"], reduce=True) + "\n\n" + decision + "." + _partial(study)
    _replace(page, "study2-table", table + "\n\n" + format_comparisons(study) + "\n\n![study](study2/study.png)")
    _replace(page, "study2-cells", format_cells(study))
    _replace(page, "study2-times", format_times(time_by_part(study, fidelity)))
    if "<!-- study2-table -->" in (root / "README.md").read_text():
        _replace(root / "README.md", "study2-table", table)
    return table


def study3(folder: Path, root: Path) -> str:
    from pcdarts.experiments.tables import format_analysis

    study = recompute_comparisons(load_study(folder))
    if not study.get("complete"):
        raise SystemExit(f"study_docs: {folder} is not complete: Study III's plan gives no reading before it is")
    page = root / "docs" / "STUDY.md"
    for marker in ("study3-table", "study3-analysis", "study3-cells", "study3-times"):
        _block(page, page.read_text(), marker)  # every block checked before anything is written
    out = root / "docs" / "study3"
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(study, indent=2) + "\n")  # the statistics by this revision's test
    shown = {**study, "arms": [a for a in study["arms"] if a["kind"] != "retrain"]}  # second trainings: noise floor
    plot_study(shown, out / "study.png")
    decision = primary_verdict(study) or "no primary arm was named"
    table = format_table(study["arms"]) + "\n\n" + decision + "."
    _replace(page, "study3-table", table + "\n\n" + format_comparisons(study) + "\n\n![study](study3/study.png)")
    primary = study.get("primary") or study["config"]["arms"][0]["name"]
    plot_ablation(study, out / "ablation.png")
    analysis = format_analysis(study, folder, primary) + "\n\n![ablation](study3/ablation.png)"
    _replace(page, "study3-analysis", analysis)
    _replace(page, "study3-cells", format_cells(study))
    _replace(page, "study3-times", format_times(time_by_part(study)))
    if "<!-- study3-table -->" in (root / "README.md").read_text():
        _replace(root / "README.md", "study3-table", table)
    return table


def main(argv: list[str] | None = None, root: Path = ROOT) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?", default="docs/study/fmnist-cpu", help="the study's --out folder")
    p.add_argument("--name", choices=("study", "study2", "study3"), default="study", help="which study of the docs")
    p.add_argument(
        "--calibration-only",
        action="store_true",
        help="study2: publish only the finished calibration (the study may still be running)",
    )
    ns = p.parse_args(argv)
    from pcdarts.errors import PCDartsError

    if ns.calibration_only and ns.name != "study2":
        p.error("--calibration-only goes with --name study2")
    publish = {"study": study1, "study2": study2, "study3": study3}[ns.name]
    if ns.calibration_only:
        publish = calibration2
    try:
        print(publish(Path(ns.folder), root))
    except PCDartsError as exc:  # no study.json, an unreadable one: one line, nothing written
        raise SystemExit(f"study_docs: {exc}") from None


if __name__ == "__main__":
    main()
