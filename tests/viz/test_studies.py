"""viz.studies: the pictures of a study, checked by what they draw."""

import re

from pcdarts.experiments.analysis import ablation
from pcdarts.viz.studies import plot_ablation
from tests.tiny import analysis_study


def _texts(svg) -> set[str]:
    return set(re.findall(r"<!-- (.*?) -->", svg.read_text(), re.S))  # matplotlib names each text it draws as paths


def test_the_ablation_puts_four_arms_on_their_k_by_edge_normalisation_grid(tmp_path):
    study = analysis_study(tmp_path)
    searched = next(c for c in study["cells"] if c["kind"] == "searched")
    study["config"]["arms"] += [{"name": "pc-only", "overrides": {"k": 4, "edge_norm": False}},
                                {"name": "en-only", "overrides": {"k": 1, "edge_norm": True}}]  # fmt: skip
    for arm, accs in (("pc-only", [0.85, 0.86]), ("en-only", [0.81, 0.83])):
        study["cells"] += [{**searched, "arm": arm, "seed": s, "test_accuracy": a} for s, a in enumerate(accs)]
    texts = _texts(plot_ablation(study, tmp_path / "a.svg"))
    assert "median percentile among the random cells" in texts
    assert {"k=1", "k=4", "edge_norm=False", "edge_norm=True", "random", "(n=10)"} <= texts
    for row in ablation(study):  # each arm's square names it and its median percentile
        assert {row["arm"], f"percentile {row['median_percentile']:.0f}"} <= texts


def test_an_ablation_of_other_arms_shows_the_cells_without_a_grid(tmp_path):
    texts = _texts(plot_ablation(analysis_study(tmp_path), tmp_path / "b.svg"))  # two arms: no 2 x 2 to fill
    assert "every cell, by arm (bars: medians)" in texts and "median percentile among the random cells" not in texts
