"""runs.search: what a search says about itself, too few arch steps to learn from and a collapsed cell; its lr
schedule, a search without edge normalisation, and resumed searches (their time, on the device)."""

import json

import pytest

from pcdarts.cli import main
from pcdarts.nas.genotype import GENOTYPES, Genotype
from pcdarts.runs.config import SearchConfig, resolve_config
from pcdarts.runs.search import run_search, search_lr
from tests.tiny import TINY, TINY_SEARCH, TINY_SEARCH_CONFIG


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


def test_search_lr_warm_up_and_the_official_one_epoch_lag():
    cfg = SearchConfig(epochs=50, warmup_epochs=35, lr=0.5, lr_warmup_epochs=5, lr_lag=True)
    assert [search_lr(cfg, e) for e in range(5)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert search_lr(cfg, 49) == pytest.approx(0.0)  # the official last search epoch runs at lr 0
    plain = SearchConfig(epochs=50, warmup_epochs=15, lr=0.1)
    assert search_lr(plain, 0) == pytest.approx(0.1) and search_lr(plain, 49) > 0


def test_no_edge_norm_search_runs_end_to_end(tmp_path):
    out = tmp_path / "s"
    assert main(["search", "--out", str(out), "--no-edge-norm", *TINY_SEARCH]) == 0
    arch = json.loads((out / "arch.json").read_text())
    assert set(arch) == {"alphas_normal", "alphas_reduce", "space", "ops"}  # no betas


def test_a_resumed_search_reports_the_time_of_both_parts(tmp_path, stop_after):
    cfg = resolve_config(SearchConfig, "synthetic", TINY_SEARCH_CONFIG)
    with stop_after(1):
        first = run_search(cfg, tmp_path / "s", progress=False)
    assert first["stopped"]
    second = run_search(cfg, tmp_path / "s", resume=True, progress=False)
    assert second["seconds"] > first["seconds"]
    assert json.loads((tmp_path / "s" / "search_result.json").read_text())["seconds"] == pytest.approx(
        second["seconds"]
    )


def test_a_resumed_search_equals_an_uninterrupted_one_on_the_device(device, tmp_path, stop_after):
    from pcdarts.runs.config import SearchConfig
    from pcdarts.runs.search import run_search

    if device.type == "cuda":
        pytest.importorskip("torch.cuda")
    cfg = SearchConfig(dataset="synthetic", **TINY_SEARCH_CONFIG, batch_size=64, device=str(device),
                       deterministic=device.type == "cuda")  # fmt: skip
    whole = run_search(cfg, tmp_path / "a", progress=False)
    with stop_after(1):
        part = run_search(cfg, tmp_path / "b", progress=False)
    assert part["stopped"]
    resumed = run_search(cfg, tmp_path / "b", resume=True, progress=False)
    assert resumed["genotype"] == whole["genotype"]
    a = (tmp_path / "a" / "arch.json").read_text()
    assert a == (tmp_path / "b" / "arch.json").read_text()
