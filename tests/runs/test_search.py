"""runs.search: what a search says about itself, too few arch steps to learn from and a collapsed cell."""

import json

from pcdarts.cli import main
from pcdarts.nas.genotype import GENOTYPES, Genotype
from tests.tiny import TINY


def test_a_collapsed_search_suggests_the_cap():
    from pcdarts.runs.search import collapse_note

    pool, conv = [["max_pool_3x3", 0], ["skip_connect", 1]] * 4, [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 4
    collapsed = Genotype.from_dict({"normal": pool, "normal_concat": [2, 3, 4, 5], "reduce": conv,
                                    "reduce_concat": [2, 3, 4, 5]})  # fmt: skip
    hint = collapse_note(collapsed, "runs/x")
    assert "8 of 8 normal" in hint and "pcdarts derive runs/x --max-param-free 2" in hint
    assert collapse_note(GENOTYPES["PC_DARTS_cifar"], "runs/x") == ""


def test_a_search_reports_its_learnability_warnings(tmp_path):
    from pcdarts.viz.report import build_report

    s = tmp_path / "s"
    assert main(["search", *TINY, "--epochs", "2", "--out", str(s)]) == 0
    said = json.loads((s / "search_result.json").read_text())["warnings"]
    assert any("arch steps" in w for w in said)
    page = build_report(s).read_text()
    assert "barely moves in fewer than" in page
