"""The NAS-Bench-201 cell space: genotypes as data, NAS-Bench-201's network, the supernet, derivation, the study."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pcdarts.deploy import predict_tensor
from pcdarts.experiments.oneshot import one_hot_transform
from pcdarts.nas.derive import derive_from_arch
from pcdarts.nas.genotype import Genotype, GenotypeError
from pcdarts.nas.nb201 import EDGES, NB201_OPS, NB201Genotype, parse_nb201, random_nb201
from pcdarts.nas.nb201_search import NB201SearchNetwork, derive_nb201, nb201_edge_weights
from pcdarts.nas.network import build_network, count_params
from pcdarts.runs.artifacts import load_genotype
from tests.tiny import STUDY_SEARCH, STUDY_TRAIN, TINY

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"

# Parameter counts of NAS-Bench-201's own network (D-X-Y/AutoDL-Projects, xautodl/models/cell_infers/
# tiny_network.py, TinyNetwork(C, N, genotype, num_classes), 3 input channels), measured by building it
# for each cell: (C=16, N=5, 10 classes) and (C=8, N=2, 100 classes).
REFERENCE_PARAMS = {
    BEST: (1_288_506, 143_788),
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|": (73_306, 21_708),
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|": (
        1_531_546,
        168_204,
    ),
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|": (
        129_306,
        27_532,
    ),
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|": (830_426, 97_868),
    "|skip_connect~0|+|avg_pool_3x3~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|": (344_346, 49_036),
}


@pytest.mark.parametrize("arch", sorted(REFERENCE_PARAMS))
def test_network_parameters_equal_nas_bench_201s(arch):
    g = parse_nb201(arch)
    big = build_network(g, num_classes=10, in_channels=3, init_channels=16, layers=15, auxiliary=False)
    small = build_network(g, num_classes=100, in_channels=3, init_channels=8, layers=6, auxiliary=False)
    assert (count_params(big), count_params(small)) == REFERENCE_PARAMS[arch]
    small.eval()
    assert small(torch.randn(2, 3, 16, 16)).shape == (2, 100)
    assert small(torch.randn(2, 3, 28, 28)).shape == (2, 100)  # odd sizes after two reductions (28, 14, 7)


def test_string_json_and_loading_round_trip(tmp_path):
    g = parse_nb201(BEST)
    assert g.to_text() == BEST and g.edges[3] == ("skip_connect", 0)
    assert Genotype.from_dict(json.loads(g.to_json())) == g  # the DARTS reader hands a nasbench201 cell over
    assert load_genotype(BEST) == g
    f = tmp_path / "genotype.json"
    f.write_text(g.to_json())
    assert load_genotype(str(f)) == g
    assert load_genotype(str(tmp_path)) == g  # a run folder
    assert g.counts() == {"param_free": 1, "none": 0}
    assert "node 3 = skip_connect(node 0)" in g.describe()
    assert isinstance(load_genotype("PC_DARTS_cifar"), Genotype)  # DARTS genotypes read as before


@pytest.mark.parametrize(
    "text",
    [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|",  # two nodes
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|+|a~0|b~1|c~2|",  # node 2 with one edge
        "|conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # unknown op
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",  # node 1 from node 1
        "|none0|+|none~0|none~1|+|none~0|none~1|none~2|",  # no ~
        "|" * 2000,
    ],
)
def test_malformed_strings_are_one_line_errors(text):
    with pytest.raises(GenotypeError) as exc:
        parse_nb201(text)
    assert "\n" not in str(exc.value)


def test_json_with_an_unknown_cell_or_disagreeing_fields_is_refused():
    with pytest.raises(GenotypeError, match="unknown cell space"):
        Genotype.from_dict({"cell": "nasbench101", "arch": BEST})
    edges = [[op, i] for op, i in parse_nb201(BEST).edges]
    edges[0][0] = "none"
    with pytest.raises(GenotypeError, match="disagree"):
        Genotype.from_dict({"cell": "nasbench201", "arch": BEST, "edges": edges})


def test_random_cells_are_uniform_over_the_whole_space():
    cells = [random_nb201(s) for s in range(2000)]
    assert random_nb201(7) == random_nb201(7)
    ops = [op for c in cells for op in c.ops]
    for name in NB201_OPS:  # each op on about a fifth of the edges, none included
        assert abs(ops.count(name) / len(ops) - 0.2) < 0.02
    assert len({c.to_text() for c in cells}) > 1800  # 2000 draws from 15,625 cells: about 1,877 distinct
    assert parse_nb201("|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|").reaches_output()
    assert not parse_nb201("|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|none~2|").reaches_output()


def test_derivation_takes_the_best_op_on_every_edge_none_included_and_caps():
    alphas = torch.zeros(6, 5)
    alphas[:, 3] = 1.0  # nor_conv_3x3 everywhere
    alphas[0, 0] = 2.0  # none on edge 1<-0
    alphas[3, 1] = 3.0  # skip on 3<-0, strongly
    alphas[4, 4] = 1.5  # avg pool on 3<-1
    g = derive_nb201(alphas)
    assert g.to_text() == "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    capped = derive_nb201(alphas, max_param_free=1)  # the weaker parameter-free pick (the pool) is struck
    assert capped.ops[3:5] == ("skip_connect", "nor_conv_3x3")
    assert derive_from_arch({"cell": "nasbench201", "alphas_normal": alphas.tolist()}) == g
    with pytest.raises(GenotypeError):
        derive_from_arch({"cell": "nasbench201", "alphas_normal": [[0.0] * 5] * 5})


@pytest.mark.parametrize("k,edge_norm", [(1, False), (1, True), (4, True), (4, False)])
def test_supernet_trains_alpha_and_beta(k, edge_norm):
    net = NB201SearchNetwork(num_classes=3, in_channels=1, init_channels=8, layers=3, k=k, edge_norm=edge_norm)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    loss = torch.nn.functional.cross_entropy(net(x), y)
    grads = torch.autograd.grad(loss, net.arch_parameters())
    assert len(grads) == (2 if edge_norm else 1)
    assert all(g.abs().sum() > 0 for g in grads)  # alpha, and beta where edge normalisation is on
    assert set(map(id, net.arch_parameters())).isdisjoint(map(id, net.weight_parameters()))
    assert isinstance(net.genotype(), NB201Genotype)
    state = net.arch_state()
    assert state["cell"] == "nasbench201" and ("betas_normal" in state) == edge_norm


# The fanned cell against the cell run edge by edge: test_fanout.py's one fan-out equivalence test (nb201-* cases).


def test_edge_normalisation_is_a_softmax_over_each_nodes_edges():
    w = nb201_edge_weights(torch.tensor([5.0, 0.0, 1.0, 0.0, 0.0, 0.0]))
    assert w[0] == 1.0  # node 1 has one edge
    assert torch.allclose(w[1:3].sum(), torch.tensor(1.0)) and w[2] > w[1]
    assert torch.allclose(w[3:], torch.full((3,), 1 / 3))


def test_one_hot_transform_runs_one_cell_through_the_supernet():
    net = NB201SearchNetwork(num_classes=3, in_channels=1, init_channels=4, layers=3, k=1, edge_norm=False)
    g = parse_nb201("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    net.arch_transform = one_hot_transform(g, net.ops)
    net.eval()
    with torch.no_grad():
        a, b = net(torch.randn(2, 1, 8, 8)), net(torch.randn(2, 1, 8, 8))
    # every cell outputs zeros, so the logits depend on the residual blocks' shortcut path alone
    assert a.shape == (2, 3) and torch.isfinite(b).all()


def test_edges_follow_the_string_order():
    assert EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def test_a_study_in_the_nasbench201_cell(tmp_path):
    """Arms that differ in K and edge normalisation, random cells from the whole space (none included), a
    retrained random cell, one-shot scores of the random cells, the hold-out, and the superiority rule."""
    from pcdarts.cli import main
    from pcdarts.experiments.stats import primary_verdict
    from pcdarts.experiments.study import load_study
    from tests.idx_data import write_idx

    data = write_idx(tmp_path / "idx")
    out = tmp_path / "study"
    search = dict(STUDY_SEARCH, cell="nasbench201", holdout_images=40)
    train = dict(STUDY_TRAIN, epochs=1, holdout_images=40)
    args = ["study", "--dataset", "fashion-mnist", "--data", str(data), "--out", str(out), "--searches", "1",
            "--random", "3", "--retrain-random", "1", "--arm", "pc:k=4", "--arm", "darts:k=1,edge_norm=false",
            "--primary", "pc", "--rule", "superiority", "--oneshot-arm", "pc", "--threads", "1",
            "--no-progress"]  # fmt: skip
    for k, v in search.items():
        args += ["--search-set", f"{k}={json.dumps(v)}"]
    for k, v in train.items():
        args += ["--train-set", f"{k}={json.dumps(v)}"]
    assert main(args) == 0
    study = load_study(out)
    kinds = sorted((c["arm"], c["kind"]) for c in study["cells"])
    assert kinds == [("darts", "searched"), ("pc", "searched"), ("random", "random"), ("random", "random"),
                     ("random", "random"), ("random-retrain", "retrain")]  # fmt: skip
    for c in study["cells"]:
        assert c["cell"] == "nasbench201" and "none_edges" in c and c["holdout_accuracy"] is not None
        assert isinstance(Genotype.from_dict(c["genotype"]), NB201Genotype)
    randoms = [c for c in study["cells"] if c["arm"].startswith("random")]
    assert {c["genotype"]["arch"] for c in randoms} == {random_nb201(s).to_text() for s in range(3)}
    retrain = next(c for c in randoms if c["kind"] == "retrain")
    assert retrain["train_seed"] == 1 and retrain["genotype"] == random_nb201(0).to_dict()
    pc = next(c for c in study["cells"] if c["arm"] == "pc")
    scores = json.loads((out / pc["oneshot_run"]).read_text())
    assert len(scores["scores"]) == 3 and all(0 <= s <= 1 for s in scores["scores"])
    darts_run = next(c for c in study["cells"] if c["arm"] == "darts")["search_run"]
    darts_cfg = json.loads((out / darts_run / "config.json").read_text())
    assert darts_cfg["k"] == 1 and darts_cfg["edge_norm"] is False and darts_cfg["cell"] == "nasbench201"
    assert "not enough cells" in primary_verdict(study)  # one search: no comparison yet


def test_the_superiority_rule():
    from pcdarts.experiments.stats import compare_with_random, primary_verdict, superiority

    assert superiority([0.9, 0.8], [0.7, 0.8]) == (2 + 1 + 0.5) / 4
    cells = [{"arm": "pc", "kind": "searched", "test_accuracy": a} for a in (0.90, 0.91, 0.92)]
    cells += [{"arm": "random", "kind": "random", "test_accuracy": a} for a in (0.5, 0.6, 0.7, 0.8, 0.85, 0.89, 0.95)]
    comp = compare_with_random(cells, "pc")
    assert comp["superiority"] == pytest.approx(18 / 21)
    study = {"primary": "pc", "config": {"rule": "superiority"}, "comparisons": [comp]}
    assert "probability of superiority 0.86" in primary_verdict(study)
    assert ("BEATS" in primary_verdict(study)) == (comp["p_value"] < 0.05)


def test_exact_mann_whitney_for_6_against_60_cells():
    """90 million splits are counted exactly (by rank sums), equal to enumeration on small cases and to scipy's
    exact test where nothing ties."""
    import math
    import random
    from itertools import combinations

    from scipy.stats import mannwhitneyu, rankdata

    from pcdarts.experiments.stats import mann_whitney_greater

    rng = random.Random(0)
    for _ in range(20):
        n, m = rng.randint(2, 5), rng.randint(2, 7)
        vals = [round(rng.random(), 1) for _ in range(n + m)]  # many ties
        twice = [int(round(2 * r)) for r in rankdata(vals)]
        brute = sum(sum(p) >= sum(twice[:n]) for p in combinations(twice, n)) / math.comb(n + m, n)
        assert mann_whitney_greater(vals[:n], vals[n:])[0] == pytest.approx(brute, abs=1e-12)
    a, b = [rng.random() + 0.3 for _ in range(6)], [rng.random() for _ in range(60)]
    p, how = mann_whitney_greater(a, b)
    assert how.startswith("exact")
    assert p == pytest.approx(mannwhitneyu(a, b, alternative="greater", method="exact").pvalue, rel=1e-9)


def test_search_train_plot_report_export_and_refusals_in_the_nasbench201_cell(tmp_path, capsys):
    """The whole path a user takes with this cell, on the CLI, at toy size."""
    from pcdarts.cli import main
    from pcdarts.deploy import load_trained

    s, t = tmp_path / "s", tmp_path / "t"
    assert main(["search", *TINY, "--cell", "nasbench201", "--epochs", "2", "--out", str(s)]) == 0
    out = capsys.readouterr().out
    assert "of 6 edges parameter-free" in out and "nasbench201 cell |" in out
    arch = json.loads((s / "arch.json").read_text())
    assert arch["cell"] == "nasbench201" and arch["ops"] == list(NB201_OPS)
    g = load_genotype(str(s))
    assert isinstance(g, NB201Genotype) and derive_from_arch(arch) == g
    train = [*TINY, "--genotype", str(s), "--epochs", "1", "--holdout-images", "40"]
    assert main(["train", *train, "--layers", "4", "--out", str(t)]) == 2  # a depth given must be whole stages
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "multiple of 3" in err and not t.exists()
    assert main(["train", *train, "--out", str(t)]) == 0
    result = json.loads((t / "result.json").read_text())
    assert result["selected_by"] == "holdout" and result["val_images"] == 40
    model, info = load_trained(t)
    assert info.genotype == g and count_params(model) == result["params"]
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(t), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["test_accuracy"] == pytest.approx(result["test_accuracy"])
    for fmt in ("torchscript", "exported"):  # each export is checked against the eager network's logits
        assert main(["export", "--checkpoint", str(t), "--format", fmt, "--out", str(tmp_path / fmt), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["max_abs_diff"] <= 1e-4
    image = tmp_path / "one.png"
    Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save(image)
    assert main(["predict", "--checkpoint", str(t), str(image), "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])[0]
    assert row["top"] == predict_tensor(model.eval(), info, info.preprocess(str(image)).unsqueeze(0))[0]["top"]
    assert main(["plot", "--run", str(s), "--out", str(tmp_path / "plots")]) == 0
    assert {p.name for p in (tmp_path / "plots").iterdir()} >= {"cells.png", "alpha_beta.png", "timeline.png"}
    assert main(["report", str(t)]) == 0
    page = (t / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') >= 2 and "~0|" in page  # pictures; the cell in its own notation
    assert main(["info", "--genotype", BEST, "--dataset", "cifar10", "--init-channels", "16", "--layers", "15",
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["params"] == REFERENCE_PARAMS[BEST][0]
    # DARTS-PT in this cell: an op for each of the 6 edges in turn, none among the candidates, no topology step
    capsys.readouterr()
    assert main(["select", "--run", str(s), "--tune-epochs", "0.5", "--score-batches", "1", "--no-progress"]) == 0
    chosen = json.loads((s / "select-pt-tune0.5-score1-seed0" / "select_result.json").read_text())
    decisions = json.loads((s / "select-pt-tune0.5-score1-seed0" / "decisions.json").read_text())
    picked = Genotype.from_dict(chosen["genotype"])
    assert isinstance(picked, NB201Genotype) and chosen["rounds"] == len(decisions) == 6
    assert sorted(d["edge"] for d in decisions) == list(range(6)) and {d["kind"] for d in decisions} == {"op"}
    assert all(set(d["removed_accuracy"]) == set(NB201_OPS) for d in decisions)  # none competes too
    assert [d["choice"] for d in sorted(decisions, key=lambda d: d["edge"])] == list(picked.ops)
    bad_flags = (["--layers", "4"], ["--max-param-free-reduce", "1"], ["--stem", "imagenet", "--layers", "3"],
                 ["--max-param-free", "7"],
                 ["--preset", "nasbench201", "--dataset", "cifar10", "--cell", "darts"])  # fmt: skip
    for bad in bad_flags:
        assert main(["search", *TINY, "--cell", "nasbench201", *bad, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "nasbench201" in err


def test_the_holdout_is_fixed_per_class_and_disjoint_from_the_train_subset():
    from pcdarts.data import selection_part, train_part
    from pcdarts.runs.config import TrainConfig
    from pcdarts.runs.inputs import load_data

    cfg = TrainConfig(dataset="digits", train_images=600, holdout_images=300)
    a, b = load_data(cfg), load_data(cfg)
    held, kept = selection_part(a), train_part(a)
    assert len(held[1]) == 300 and len(kept[1]) == 600
    assert torch.equal(held[0], selection_part(b)[0])  # the same images every time
    counts = torch.bincount(held[1], minlength=10)
    assert counts.min() >= 29 and counts.max() <= 31  # per class
    flat_held = {bytes(x.numpy().tobytes()) for x in held[0]}
    assert not flat_held & {bytes(x.numpy().tobytes()) for x in kept[0]}  # disjoint (digits has no duplicates)


@pytest.mark.parametrize(
    "flags", [["--unrolled"], ["--early-stop-stable", "1", "--beta-decay", "5"], ["--no-edge-norm", "--k", "1"]]
)
def test_the_search_flags_work_in_the_nasbench201_cell(tmp_path, flags):
    """Second order, DARTS+ early stopping and beta-DARTS, and plain DARTS (K=1, no edge normalisation)."""
    from pcdarts.cli import main

    out = tmp_path / "s"
    args = ["search", *TINY, "--cell", "nasbench201", "--epochs", "3", "--warmup-epochs", "1"]
    assert main([*args, *flags, "--out", str(out)]) == 0
    result = json.loads((out / "search_result.json").read_text())
    assert Genotype.from_dict(result["genotype"]).cell == "nasbench201"
    if "--early-stop-stable" in flags:
        assert result["early_stop"] is None or "unchanged" in result["early_stop"]["reason"]
    if "--no-edge-norm" in flags:
        assert "betas_normal" not in json.loads((out / "arch.json").read_text())


def test_the_cap_range_is_the_librarys_rule_too():
    from pcdarts.nas.derive import derive_genotype

    with pytest.raises(ValueError, match="between 0 and 6"):
        derive_nb201(torch.zeros(6, 5), max_param_free=7)
    with pytest.raises(ValueError, match="between 0 and 8"):
        derive_genotype(torch.zeros(14, 8), torch.zeros(14, 8), max_param_free_reduce=9)
    with pytest.raises(GenotypeError, match="between 0 and 6"):
        derive_from_arch({"cell": "nasbench201", "alphas_normal": [[0.0] * 5] * 6}, max_param_free=7)


def test_the_nasbench201_cell_has_its_own_defaults_and_whole_stage_depths():
    """NAS-Bench-201's network (C=16, N=5, no auxiliary head, drop path or cutout) where a dataset sets none;
    a default depth is rounded up to whole stages, a depth given that is not one is refused."""
    from pcdarts.errors import ConfigError
    from pcdarts.runs.artifacts import describe_network
    from pcdarts.runs.config import SearchConfig, TrainConfig, resolve_config
    from pcdarts.runs.presets import preset_values

    nb = resolve_config(TrainConfig, "cifar10", {"genotype": BEST})
    assert (nb.init_channels, nb.layers, nb.auxiliary, nb.drop_path, nb.cutout) == (16, 15, False, 0.0, 0)
    darts = resolve_config(TrainConfig, "cifar10", {})
    assert (darts.init_channels, darts.layers, darts.auxiliary, darts.cutout) == (36, 20, True, 16)
    assert TrainConfig.for_dataset("synthetic", genotype=BEST).layers == 6  # synthetic's 5, in whole stages
    with pytest.raises(ConfigError, match="multiple of 3"):
        TrainConfig.for_dataset("synthetic", genotype=BEST, layers=5)
    protocol = resolve_config(
        TrainConfig, "cifar10", {"genotype": BEST}, preset_values("nasbench201", "train", "cifar10")
    )
    assert (protocol.epochs, protocol.batch_size, protocol.lr, protocol.weight_decay) == (200, 256, 0.1, 5e-4)
    search = resolve_config(SearchConfig, "cifar10", {"cell": "nasbench201"})
    assert (search.init_channels, search.layers, search.space) == (16, 15, "nb201")
    assert resolve_config(SearchConfig, "cifar10", {}, preset_values("nasbench201", "search", "cifar10")).cell == (
        "nasbench201"
    )
    assert resolve_config(SearchConfig, "digits", {"cell": "nasbench201"}).layers == 6  # digits' 5, rounded up
    # info: NAS-Bench-201's own figures for this cell at C=16, N=5 on CIFAR-10, with nothing else given
    size = describe_network(BEST, dataset="cifar10")
    assert (size["params"], round(size["macs"] / 1e5)) == (REFERENCE_PARAMS[BEST][0], 1847)
    all_conv = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert describe_network(all_conv, dataset="cifar10")["macs"] == 220_119_680


def test_the_op_space_is_the_cells_own_unless_one_is_named():
    from pcdarts.errors import ConfigError
    from pcdarts.runs.config import SearchConfig, build_search_network

    assert SearchConfig(cell="nasbench201", layers=3).space == "nb201"
    assert SearchConfig().space == "darts"
    named = SearchConfig(cell="nasbench201", layers=3, init_channels=4, space="darts")  # the paper's 8 ops in it
    assert named.space == "darts"
    net = build_search_network(named, num_classes=3, in_channels=1)
    assert net(torch.rand(2, 1, 8, 8)).shape == (2, 3) and net.alphas_normal.shape == (6, 8)
    for cap in ("max_param_free", "early_stop_param_free"):  # the cell has 6 edges to count, the DARTS cell 8
        with pytest.raises(ConfigError, match="between . and 6"):
            SearchConfig(cell="nasbench201", layers=3, **{cap: 7})
        assert getattr(SearchConfig(**{cap: 8}), cap) == 8


def test_settings_of_the_nasbench201_cell_resolve_in_their_layers(tmp_path, capsys):
    """The dataset's defaults over the cell's, a preset's warm-up share, a study whose arm sets the cell, and
    the refusals of settings that contradict each other."""
    from pcdarts.cli import main
    from pcdarts.errors import ConfigError
    from pcdarts.experiments.study_config import Arm, StudyConfig
    from pcdarts.runs.config import SearchConfig, TrainConfig, resolve_config
    from pcdarts.runs.presets import preset_values
    from pcdarts.runs.train import run_train

    digits = resolve_config(TrainConfig, "digits", {"genotype": BEST})  # digits' own sizes and regularisers win
    assert (digits.init_channels, digits.layers, digits.cutout, digits.drop_path) == (16, 6, 4, 0.1)
    assert resolve_config(SearchConfig, "digits", {"cell": "nasbench201", "space": "darts"}).space == "darts"
    nb_preset = preset_values("nasbench201", "search", "cifar10")
    assert resolve_config(SearchConfig, "cifar10", {"epochs": 10}, nb_preset).warmup_epochs == 0  # its 0 of 50
    paper_inet = preset_values("paper", "search", "imagenet")
    assert resolve_config(SearchConfig, "imagenet", {"epochs": 10}, paper_inet).warmup_epochs == 7  # its 35 of 50
    assert resolve_config(SearchConfig, "cifar10", {"epochs": 10}).warmup_epochs == 3  # the paper's 15 of 50
    with pytest.raises(ConfigError, match="give one of the two"):
        resolve_config(TrainConfig, "digits", {"holdout_images": 40, "val_fraction": 0.2})
    assert resolve_config(TrainConfig, "digits", {"holdout_images": 40, "val_fraction": 0.0}).holdout_images == 40
    # an arm that sets the cell: the study's trainings build that cell's network
    study = StudyConfig(dataset="cifar10", arms=(Arm("nb", {"cell": "nasbench201"}),))
    train = study.train_config()
    assert study.cell() == "nasbench201" and (train.init_channels, train.layers, train.auxiliary) == (16, 15, False)
    with pytest.raises(ConfigError, match="different cell spaces"):
        StudyConfig(arms=(Arm("nb", {"cell": "nasbench201", "layers": 3}), Arm("d")))
    # a library training of this cell: the cell named, or a one-line error that says how
    assert TrainConfig.for_dataset("cifar10", cell="nasbench201").layers == 15
    with pytest.raises(ConfigError, match="for_dataset"):
        run_train(TrainConfig.for_dataset("cifar10"), tmp_path / "t", genotype=parse_nb201(BEST))
    assert not (tmp_path / "t").exists()
    # NAS-Bench-201's protocol is for its own cell
    assert main(["train", "--preset", "nasbench201", "--dataset", "cifar10", "--genotype", "DARTS_V2",
                 "--print-config"]) == 2  # fmt: skip
    assert "--preset nasbench201" in capsys.readouterr().err
