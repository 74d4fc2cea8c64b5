"""The search space as data: the op table, chosen spaces, your own ops, and nothing ever dropped."""

import json

import pytest
import torch
from torch import nn

import pcdarts
from pcdarts.cli import main
from pcdarts.errors import ConfigError
from pcdarts.nas.candidates import OPS, PRIMITIVES, SPACES, OpSpace, op_space, register_op, space_of
from pcdarts.nas.derive import derive_from_arch, derive_genotype
from pcdarts.nas.genotype import GenotypeError, random_genotype
from pcdarts.nas.supernet import SearchCell, SearchNetwork
from tests.nas.user_ops import CUSTOM, SPACE_CASES, plain_op
from tests.pictures import assert_drawn
from tests.tiny import SIZES, TINY, TINY_SEARCH


def _weight_grads(net: SearchNetwork, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """d(random projection of the logits) / d(each mixing weight), weights injected as leaves."""
    torch.manual_seed(1)
    wn = torch.softmax(torch.randn_like(net.alphas_normal), -1).double().requires_grad_(True)
    wr = torch.softmax(torch.randn_like(net.alphas_reduce), -1).double().requires_grad_(True)
    net.arch_transform = lambda a, b, c, d: (wn, wr, c, d)
    proj = torch.randn(x.shape[0], net.num_classes, dtype=torch.float64)
    (net(x) * proj).sum().backward()
    net.arch_transform = None
    return wn.grad, wr.grad


@pytest.mark.parametrize("ops", SPACE_CASES, ids=[*SPACES, "custom"])
@pytest.mark.parametrize("fanned", [True, False])
def test_every_ops_weight_reaches_the_logits(ops, fanned, monkeypatch):
    """Moving one op's mixing weight on one edge moves the logits, for every op on every edge (to first order:
    the gradient); ``none`` adds zeros, so its weight does not. An op the supernet dropped would show a zero."""
    torch.manual_seed(0)
    net = SearchNetwork(num_classes=4, init_channels=8, layers=3, k=2, ops=ops).double()
    if not fanned:
        monkeypatch.setattr(SearchCell, "_fans_out", lambda self, h: False)
    gn, gr = _weight_grads(net, torch.randn(3, 3, 10, 10, dtype=torch.float64))
    for g in (gn, gr):
        for col, name in enumerate(ops):
            if OPS[name].zero:
                assert torch.all(g[:, col] == 0), name
            else:
                assert torch.all(g[:, col].abs() > 1e-12), (name, g[:, col])


def test_the_fast_path_knows_the_shipped_ops_and_not_the_users():
    net = SearchNetwork(num_classes=3, init_channels=8, layers=3, k=2, ops=CUSTOM)
    cell = net.cells[0]
    mixed = cell.edges[0].op
    kinds = dict(zip((CUSTOM[k] for k in mixed.op_index), mixed.kinds))
    assert kinds == {
        "skip_connect": "skip",
        "test_plain_conv": None,
        "sep_conv_3x3": "sep_conv",
        "test_fused_conv": None,
        "max_pool_3x3": "pool",
    }
    assert mixed.fused == [False, False, True, True, True]  # identity and the plain op run their own forward
    assert cell._fans_out(torch.randn(2, 24, 8, 8))  # the user's affine BN does not stop the others fanning out


def test_the_darts_space_is_the_paper_order_and_the_default():
    assert SPACES["darts"] == PRIMITIVES and op_space() == OpSpace("darts", PRIMITIVES)
    net = SearchNetwork(num_classes=3, init_channels=8, layers=3, k=2)
    assert net.ops == PRIMITIVES and net.alphas_normal.shape == (14, 8)
    assert {n for n in OPS if OPS[n].parameter_free} == {"max_pool_3x3", "avg_pool_3x3", "skip_connect"}


def test_op_lists_are_checked_and_named():
    assert op_space(ops=SPACES["nb201"]).name == "nb201"  # a list equal to a named space takes its name
    assert op_space(ops="sep_conv_3x3, skip_connect").ops == ("sep_conv_3x3", "skip_connect")  # none not implied
    assert op_space(ops=["sep_conv_3x3"]).name == "custom"
    for bad, match in (
        (dict(space="nope"), "unknown op space 'nope'"),
        (dict(ops=["sep_conv_3x3", "conv_9x9"]), "unknown op 'conv_9x9'.*register_op"),
        (dict(ops=["skip_connect", "skip_connect"]), "listed twice"),
        (dict(ops=["none"]), "no op besides 'none'"),
        (dict(space="nb201", ops=["sep_conv_3x3"]), "both given"),
        (dict(space="nb201", ops=SPACES["darts"]), "both given"),  # a named space and another space's list
        (dict(space="nb2O1", ops=["sep_conv_3x3"]), "unknown op space 'nb2O1'"),  # a typo is not ignored
    ):
        with pytest.raises(ConfigError, match=match):
            op_space(**bad)
    cfg = pcdarts.SearchConfig(ops="none,sep_conv_3x3")
    assert cfg.ops == ("none", "sep_conv_3x3") and cfg.space == "custom"  # config.json names it as searched
    assert pcdarts.SearchConfig(ops=SPACES["nb201"]).space == "nb201"
    with pytest.raises(ConfigError, match="none"):
        SearchNetwork(num_classes=3, init_channels=8, layers=3, k=2, space=OpSpace("mine", ("none",)))
    with pytest.raises(ConfigError, match="unknown op"):
        pcdarts.SearchConfig(ops=["sep_conv_9x9"])


def test_register_op_checks_what_it_is_given():
    with pytest.raises(ValueError, match="already registered"):
        register_op("sep_conv_3x3", plain_op)
    with pytest.raises(ValueError, match="op name"):
        register_op("two,ops", plain_op)
    with pytest.raises(ValueError, match="fan_out"):
        register_op("test_bad_kind", plain_op, fan_out="matmul")
    with pytest.raises(TypeError, match="callable"):
        register_op("test_not_callable", 3)
    assert "test_bad_kind" not in OPS and "test_not_callable" not in OPS

    with pytest.raises(ValueError, match="search_bn=True"):
        register_op("test_pool_without_bn", plain_op, fan_out="pool")

    def build(c: int, stride: int, affine: bool) -> nn.Module:
        return OPS["avg_pool_3x3"](c, stride, affine)

    if "test_decorated" not in OPS:
        assert register_op("test_decorated", parameter_free=True)(build) is build  # the decorator form
    assert OPS["test_decorated"].parameter_free


def test_a_declared_fast_kind_that_does_not_fit_the_module_runs_edge_by_edge():
    """Declaring ``fan_out='sep_conv'`` for a module that is not a SepConv cannot make the fast path misread it."""
    if "test_liar" not in OPS:  # the table is global: a second run of the test in one process reuses it
        register_op("test_liar", plain_op, fan_out="sep_conv")
    mixed = SearchNetwork(num_classes=3, init_channels=8, layers=3, k=2, ops=("test_liar",)).cells[0].edges[0].op
    assert mixed.kinds == [None]


def test_the_space_is_stored_and_read_back_with_the_arch_state():
    net = SearchNetwork(num_classes=3, init_channels=8, layers=3, k=2, space="nb201")
    with torch.no_grad():
        net.alphas_normal.normal_()
        net.alphas_reduce.normal_()
    state = json.loads(json.dumps(net.arch_state()))
    assert state["space"] == "nb201" and state["ops"] == list(SPACES["nb201"])
    g = derive_from_arch(state)
    assert g == net.genotype() and {op for op, _ in g.normal + g.reduce} <= set(SPACES["nb201"])
    assert space_of(state) == OpSpace("nb201", SPACES["nb201"])
    old = {k: v for k, v in state.items() if k not in ("space", "ops")}  # as written before spaces were stored
    with pytest.raises(GenotypeError, match=r"does not fit the cell space \(14, 8\)"):
        derive_from_arch(old)
    darts = SearchNetwork(num_classes=3, init_channels=8, layers=3, k=2).arch_state()
    del darts["space"], darts["ops"]
    assert space_of(darts) == OpSpace("darts", PRIMITIVES)  # old runs load as darts
    derive_from_arch(darts)
    with pytest.raises(GenotypeError, match="not registered here"):
        derive_from_arch({**state, "ops": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "warp_9x9"]})
    with pytest.raises(ValueError, match=r"\(14, 5\) does not fit the cell space \(14, 8\) \(8 ops: none, max_pool"):
        derive_genotype(net.alphas_normal, net.alphas_reduce)  # DARTS columns assumed: does not fit


def test_random_cells_come_from_the_space_and_the_darts_cells_did_not_change():
    from pcdarts.experiments.units import _digest

    assert _digest(random_genotype(0).to_dict()) == "1ee8237811"  # Study II's calibration cell 0 (folder name)
    assert _digest(random_genotype(1).to_dict()) == "d749c2d487"
    g = random_genotype(3, ops=SPACES["nb201"])
    assert {op for op, _ in g.normal + g.reduce} <= set(SPACES["nb201"]) - {"none"}
    with pytest.raises(GenotypeError, match="no op besides"):
        random_genotype(0, ops=["none"])


def test_a_users_op_trains_in_the_final_network():
    g = random_genotype(0, ops=CUSTOM)
    net = pcdarts.build_network(g, num_classes=3, in_channels=1, init_channels=8, layers=3, auxiliary=False)
    out = net(torch.randn(2, 1, 8, 8))
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    out.sum().backward()
    users = {"test_plain_conv", "test_fused_conv"}
    built = []  # (op name, its weights) for every user's op in the network: a cell's ops follow its genotype
    for cell in net.cells:
        for (name, _), op in zip(g.reduce if cell.reduction else g.normal, cell.ops, strict=True):
            if name in users:
                built.append((name, list(op.parameters())))
    assert {name for name, _ in built} == users  # both user's ops were drawn and built
    for name, params in built:
        assert params, name
        for p in params:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name


def test_a_study_draws_random_cells_from_its_searches_space(tmp_path):
    from pcdarts.experiments.study import Arm, Study, StudyConfig

    cfg = StudyConfig(dataset="synthetic", arms=[Arm("a"), Arm("b", {"space": "nb201"})])
    with pytest.raises(ConfigError, match="different op spaces"):
        Study(cfg, tmp_path / "s").op_space()
    cfg = StudyConfig(dataset="synthetic", arms=[Arm("a", {"space": "nb201"})])
    assert Study(cfg, tmp_path / "s").op_space().name == "nb201"


def test_a_search_in_another_space_stores_it_everywhere_and_resumes_only_in_it(tmp_path, capsys, stop_after):
    from pcdarts.cli import main
    from pcdarts.files import read_jsonl
    from pcdarts.runs.search import run_search
    from pcdarts.viz.plot import alpha_heatmaps

    out = tmp_path / "s"
    flags = TINY_SEARCH
    ops = "none,skip_connect,test_plain_conv,sep_conv_3x3"
    assert main(["search", *flags, "--ops", ops, "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["ops"] == ops.split(",")
    shape = {k: SIZES[k] for k in ("layers", "init_channels", "image_size")}
    cfg = pcdarts.SearchConfig.for_dataset("synthetic", **shape, epochs=2, warmup_epochs=1, threads=1, ops=ops)
    with stop_after(1):
        stopped = run_search(cfg, out, progress=False)
    assert stopped["stopped"]
    assert main(["search", "--out", str(out), "--resume", *flags, "--space", "nb201"]) != 0
    assert "but this run asks for 'nb201'" in capsys.readouterr().err  # one line: the resume check names it
    assert main(["search", "--out", str(out), "--resume", "--no-progress"]) == 0
    arch = json.loads((out / "arch.json").read_text())
    assert arch["space"] == "custom" and arch["ops"] == ops.split(",")
    assert json.loads((out / "config.json").read_text())["ops"] == ops.split(",")
    history = read_jsonl(out / "arch_history.jsonl")
    assert all(h["ops"] == ops.split(",") for h in history)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["space"] == {"space": "custom", "ops": ops.split(",")}
    g = pcdarts.derive_from_run(out)
    assert {op for op, _ in g.normal + g.reduce} <= set(ops.split(",")) - {"none"}
    assert_drawn(alpha_heatmaps(history, tmp_path / "a.png"))
    with pytest.raises(ConfigError, match="4 columns but the stored op space 8"):
        alpha_heatmaps([{**history[0], "ops": list(PRIMITIVES)}], tmp_path / "b.png")
    assert main(["search", *flags, "--ops", "sep_conv_3x3,warp_9x9", "--out", str(tmp_path / "x")]) == 2
    assert "unknown op 'warp_9x9'" in capsys.readouterr().err


def test_files_written_before_spaces_were_stored_still_load(tmp_path):
    """A search's files as pcdarts wrote them before op spaces were stored (no "ops" or "space" keys) derive
    and plot as the DARTS space."""
    from pcdarts.files import read_jsonl
    from pcdarts.nas.genotype import Genotype
    from pcdarts.viz.plot import alpha_heatmaps

    run = tmp_path / "old"
    args = ["search", *TINY, "--epochs", "2", "--out", str(run)]
    assert main(args) == 0
    arch = json.loads((run / "arch.json").read_text())
    old = {k: v for k, v in arch.items() if k not in ("ops", "space")}
    (run / "arch.json").write_text(json.dumps(old))
    lines = [{k: v for k, v in h.items() if k not in ("ops", "space")} for h in read_jsonl(run / "arch_history.jsonl")]
    (run / "arch_history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in lines))
    assert pcdarts.derive_from_run(run) == Genotype.from_dict(json.loads((run / "genotype.json").read_text()))
    history = read_jsonl(run / "arch_history.jsonl")
    assert derive_from_arch(history[-1]) == Genotype.from_dict(history[-1]["genotype"])
    assert_drawn(alpha_heatmaps(history, tmp_path / "a.png"))


def test_the_parameter_free_cap_keeps_what_a_space_without_parametric_ops_has():
    """--max-param-free in a space of pools and skip only: the cap cannot be met; the cell is derived, not a crash."""
    ops = ("none", "skip_connect", "max_pool_3x3")
    torch.manual_seed(0)
    a = torch.randn(14, 3)
    g = derive_genotype(a, a, ops=ops, max_param_free=2, max_param_free_reduce=0)
    assert len(g.normal) == 8 and {op for op, _ in g.normal} <= {"skip_connect", "max_pool_3x3"}
    mixed = ("none", "skip_connect", "max_pool_3x3", "sep_conv_3x3")  # with one op that has parameters: met
    b = torch.randn(14, 4)
    capped = derive_genotype(b, b, ops=mixed, max_param_free=2)
    assert sum(op != "sep_conv_3x3" for op, _ in capped.normal) <= 2
    assert derive_genotype(b, b, ops=mixed) == derive_genotype(b, b, ops=mixed, max_param_free=8)


def test_plan_predicts_the_memory_of_the_chosen_space(capsys):
    from pcdarts.cli import main

    flags = ["plan", "--ks", "4", "--batch-size", "8", "--size", "8", "--layers", "3", "--init-channels", "8", "--json"]
    per_sample = {}
    for space in ("darts", "nb201"):
        assert main([*flags, "--space", space]) == 0
        per_sample[space] = json.loads(capsys.readouterr().out)[0]["per_sample_bytes"]
    assert per_sample["nb201"] < per_sample["darts"]  # 4 candidate ops an edge keep less than 7
    assert main([*flags, "--ops", "none,warp_9x9"]) == 2
    assert "unknown op 'warp_9x9'" in capsys.readouterr().err
