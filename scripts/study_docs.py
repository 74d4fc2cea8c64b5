"""Copy a study's results into the docs: docs/study/study.json and study.png, and the tables in the README and STUDY.md.

    python scripts/study_docs.py docs/study/fmnist-cpu

Rewrites only the text between the <!-- study-table --> markers and the <!-- study-cells --> markers.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from pcdarts.study import format_table, load_study, plot_study, verdict

ROOT = Path(__file__).resolve().parents[1]


def _replace(path: Path, marker: str, text: str) -> None:
    page = path.read_text()
    pattern = re.compile(rf"(<!-- {marker} -->\n).*?(<!-- /{marker} -->)", re.S)
    if not pattern.search(page):
        raise SystemExit(f"{path} has no <!-- {marker} --> block")
    path.write_text(pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), page))


def cells_table(study: dict) -> str:
    rows = ["| arm | seed | test accuracy | val accuracy | params | param-free (normal) | normal cell |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in study["cells"]:
        normal = ", ".join(f"{op}({i})" for op, i in c["genotype"]["normal"])
        val = f"{100 * c['val_accuracy']:.2f} %" if c.get("val_accuracy") is not None else "-"
        rows.append(
            f"| {c['arm']} | {c['seed']} | {100 * c['test_accuracy']:.2f} % | {val} | {c['params']:,} | "
            f"{c['param_free_normal']} | {normal} |"
        )
    return "\n".join(rows)


def main(folder: str) -> None:
    study = load_study(folder)
    out = ROOT / "docs" / "study"
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(study, indent=2) + "\n")
    plot_study(study, out / "study.png")
    state = "" if study.get("complete") else f"\n\n(partial: {len(study['cells'])} cells so far; the study continues)"
    table = format_table(study["arms"]) + "\n\n" + verdict(study["arms"]) + "." + state
    _replace(ROOT / "README.md", "study-table", table)
    _replace(ROOT / "docs" / "STUDY.md", "study-table", table)
    _replace(ROOT / "docs" / "STUDY.md", "study-cells", cells_table(study))
    print(table)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/study/fmnist-cpu")
