"""Perturbation-based selection (DARTS-PT): what a probe removes, which op and edges it keeps, resumption."""

import json

import pytest
import torch

import pcdarts.runs.select as select_mod
from pcdarts.cli import main
from pcdarts.files import load_checkpoint, save_checkpoint
from pcdarts.nas.candidates import PRIMITIVES
from pcdarts.nas.genotype import Genotype
from pcdarts.nas.perturbation import Projection, plan_rounds
from pcdarts.nas.space import node_edges, num_edges
from pcdarts.runs.select import SelectConfig, Selector, run_select

E, N_OPS = num_edges(4), len(PRIMITIVES)


QUICK = SelectConfig(tune_epochs=0.5, score_batches=1, threads=1)  # one tuning step a round on the shared search


def test_a_probe_removes_exactly_one_op_and_decisions_fix_their_edge():
    p = Projection(E, PRIMITIVES)
    w = torch.softmax(torch.randn(E, N_OPS), -1)
    e = torch.rand(E)
    p.probe = ("normal", 3, 5)
    wn, wr, en, er = p(w, w, e, e)
    changed = (wn != w).nonzero().tolist()
    assert changed == [[3, 5]] and wn[3, 5] == 0 and torch.equal(wr, w) and torch.equal(en, e)
    p.probe = ("reduce", 6, None)  # the whole edge, bypass channels too (its edge weight)
    wn, wr, en, er = p(w, w, e, e)
    assert torch.equal(wr, w) and er[6] == 0 and torch.equal(er[:6], e[:6]) and torch.equal(en, e)
    p.probe = None
    p.op["normal"][2] = 4
    p.removed["normal"][7] = True
    wn, _, en, _ = p(w, w, None, None)  # without edge normalisation a removed edge still gets a zero weight
    assert wn[2].tolist() == [1.0 if k == 4 else 0.0 for k in range(N_OPS)] and torch.equal(wn[3], w[3])
    assert en[7] == 0 and en.sum() == E - 1


def test_the_decision_keeps_the_op_whose_removal_hurts_most_and_drops_the_least_missed_edges(tiny_search, tmp_path):
    sel = Selector(tiny_search, tmp_path / "sel", QUICK, progress=False)
    sel._build(torch.device("cpu"))
    before = {k: v.clone() for k, v in sel.model.named_buffers()}
    sel.model.eval()
    base = sel.decider.score(None)
    removed = sel.decider.score(("normal", 0, PRIMITIVES.index("skip_connect")))
    assert 0 <= base <= 1 and 0 <= removed <= 1 and sel.projection.probe is None
    assert sel.model.training  # scored with batch statistics, as DARTS-PT does
    for k, v in sel.model.named_buffers():  # and the running statistics put back
        assert torch.equal(v, before[k]), k
    assert sel.score_stream.n == 180  # the arch split: half of the search's 360 digits train images
    hurt = {"sep_conv_5x5": 0.10, "skip_connect": 0.40, "max_pool_3x3": 0.30}
    sel.decider.score = lambda probe: 0.5 if probe is None or probe[2] is None else hurt.get(PRIMITIVES[probe[2]], 0.45)
    d = sel.decider.decide_op("normal", 4)
    assert d["choice"] == "sep_conv_5x5" and "none" not in d["removed_accuracy"]
    assert sel.projection.op["normal"][4] == PRIMITIVES.index("sep_conv_5x5")
    node = node_edges(4)[3]  # 5 input edges: removing edge node.start + j leaves accuracy 0.1 * j
    sel.decider.score = lambda probe: 0.1 * (probe[1] - node.start)
    d = sel.decider.decide_node("reduce", 3)
    assert d["kept_inputs"] == [0, 1] and [s["dropped"] for s in d["steps"]] == [node.start + 4, node.start + 3,
                                                                               node.start + 2]  # fmt: skip
    assert [sel.projection.removed["reduce"][e] for e in node] == [False, False, True, True, True]


def test_rounds_visit_every_edge_and_node_once_in_a_seeded_order():
    rounds = plan_rounds(4, seed=3)
    ops = [r for r in rounds if r["kind"] == "op"]
    assert sorted(r["normal"] for r in ops) == list(range(E)) == sorted(r["reduce"] for r in ops)
    assert sorted(r["normal"] for r in rounds if r["kind"] == "node") == [1, 2, 3]
    assert plan_rounds(4, seed=3) == rounds and plan_rounds(4, seed=4) != rounds


def _stop_after(m, rounds):
    """Patch the run loop (with monkeypatch context ``m``) so that a stop is asked for during round ``rounds``,
    as a SIGTERM then would: the selection ends that round, checkpoints and returns."""
    import pcdarts.runs.loop as loop_mod

    asked = {"stop": False}
    run_epoch = select_mod.Selector.run_epoch

    def counted(self, epoch, after_step):
        asked["stop"] = epoch + 1 >= rounds
        return run_epoch(self, epoch, after_step)

    class StopAfter:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        @property
        def requested(self):
            return asked["stop"]

    m.setattr(select_mod.Selector, "run_epoch", counted)
    m.setattr(loop_mod, "GracefulStop", StopAfter)


def test_selection_gives_a_valid_cell_with_every_decision_recorded(tiny_search, tmp_path):
    cfg = SelectConfig(tune_epochs=0, score_batches=1, threads=1)
    result = run_select(tiny_search, tmp_path / "whole", cfg, progress=False)
    assert result["seconds"] > 0 and 0 < result["cpu_seconds"]  # a study's time table sums both
    env = json.loads((tmp_path / "whole" / "environment.json").read_text())
    assert result["revision"] == env["git"] and "earlier" not in env  # the code that made the selection
    g = Genotype.from_dict(result["genotype"])
    for cell in (g.normal, g.reduce):
        assert len(cell) == 8 and all(op != "none" for op, _ in cell)
        for i in range(4):
            assert len({cell[2 * i][1], cell[2 * i + 1][1]}) == 2 and max(cell[2 * i][1], cell[2 * i + 1][1]) < i + 2
    decisions = json.loads((tmp_path / "whole" / "decisions.json").read_text())
    assert sum(d["kind"] == "op" for d in decisions) == 2 * E and sum(d["kind"] == "node" for d in decisions) == 6
    assert all(0 <= v <= 1 for d in decisions if d["kind"] == "op" for v in d["removed_accuracy"].values())
    ops = {(d["cell"], d["edge"]): d["choice"] for d in decisions if d["kind"] == "op"}
    for name, cell in (("normal", g.normal), ("reduce", g.reduce)):  # the cell holds the decided ops
        for i, (op, j) in enumerate(cell):
            assert ops[name, node_edges(4)[i // 2].start + j] == op
    rounds = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rounds] == list(range(1, result["rounds"] + 1))  # one record a round, on the loop
    assert all(r["train_loss"] is None and r["tune_steps"] == 0 for r in rounds)  # --tune-epochs 0: nothing tuned
    assert [r["choices"]["normal"] for r in rounds[:E]] == [d["choice"] for d in decisions[: 2 * E : 2]]
    assert run_select(tiny_search, tmp_path / "whole", cfg, progress=False)["genotype"] == result["genotype"]  # read


def test_a_resumed_selection_equals_an_uninterrupted_one(tiny_search, tmp_path, monkeypatch):
    """Stopped after round 1 and continued to round 3 = run to round 3 at once: decisions, weights, alpha."""
    import pcdarts.runs.environment as env_mod

    with monkeypatch.context() as m:
        _stop_after(m, 3)
        assert run_select(tiny_search, tmp_path / "whole", QUICK, progress=False)["round"] == 3
        _stop_after(m, 1)
        m.setattr(env_mod, "revision", lambda: "a" * 40)  # the first part run by one commit, the rest by another
        assert run_select(tiny_search, tmp_path / "resumed", QUICK, progress=False)["round"] == 1
        m.setattr(env_mod, "revision", lambda: "b" * 40)
        ckpt = tmp_path / "resumed" / "checkpoint.pt"
        save_checkpoint(ckpt, {**load_checkpoint(ckpt), "seconds": 1e5, "cpu_seconds": 1e5})  # time so far
        _stop_after(m, 3)  # rounds 2 and 3
        assert run_select(tiny_search, tmp_path / "resumed", QUICK, progress=False)["round"] == 3
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert a["decisions"] == b["decisions"] and a["projection"] == b["projection"] and a["tune_done"] > 0
    assert 1e5 < b["cpu_seconds"] < 1e5 + 600 and 1e5 < b["seconds"] < 1e5 + 600  # counted on from round 1
    env = json.loads((tmp_path / "resumed" / "environment.json").read_text())
    assert env["git"] == "b" * 40 and [e["git"] for e in env["earlier"]] == ["a" * 40]  # both commits named
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    (tmp_path / "whole" / "checkpoint.pt").unlink()  # as the error for a bad checkpoint says to do
    _stop_after(monkeypatch, 1)
    monkeypatch.setattr(env_mod, "revision", lambda: "c" * 40)
    assert run_select(tiny_search, tmp_path / "whole", QUICK, progress=False)["round"] == 1
    env = json.loads((tmp_path / "whole" / "environment.json").read_text())
    assert env["git"] == "c" * 40 and "earlier" not in env  # started afresh: the abandoned attempt is not named


def test_select_refuses_what_it_cannot_use(tiny_search, tmp_path, capsys):
    assert main(["select", "--run", str(tmp_path), "--no-progress"]) == 2
    assert "not a finished search run" in capsys.readouterr().err
    assert main(["select", "--run", str(tiny_search), "--out", str(tiny_search), "--no-progress"]) == 2
    assert "is the search run itself" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["select", "--run", str(tiny_search), "--out", str(tmp_path / "mine"), "--no-progress"]) == 2
    assert "holds no selection" in capsys.readouterr().err and (tmp_path / "mine" / "notes.txt").is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "select_config.json").write_text(json.dumps({**QUICK.__dict__, "search_arch_sha256": "x"}))
    assert main(["select", "--run", str(tiny_search), "--out", str(tmp_path / "other"), "--tune-epochs", "0.5",
                 "--score-batches", "1", "--threads", "1", "--no-progress"]) == 2  # fmt: skip
    assert "from another search" in capsys.readouterr().err
    pinned = tmp_path / "pinned"  # a selection of this search with other settings: its config.json pins it
    assert run_select(tiny_search, pinned, SelectConfig(tune_epochs=0, score_batches=1, threads=1), progress=False)
    assert main(["select", "--run", str(tiny_search), "--out", str(pinned), "--tune-epochs", "0.5",
                 "--score-batches", "1", "--threads", "1", "--no-progress"]) == 2  # fmt: skip
    assert "other settings" in capsys.readouterr().err and (pinned / "select_result.json").is_file()
    old = tmp_path / "old"  # stopped part-way by an older layout: refused, its files left as they were
    old.mkdir()
    (old / "select_config.json").write_text(json.dumps({**QUICK.__dict__, "search_arch_sha256": "x"}))
    (old / "select_checkpoint.pt").write_bytes(b"older")
    assert main(["select", "--run", str(tiny_search), "--out", str(old), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "older pcdarts" in err and len(err.strip().splitlines()) == 1
    assert sorted(f.name for f in old.iterdir()) == ["select_checkpoint.pt", "select_config.json"]
    with pytest.raises(ValueError, match="tune epochs"):
        SelectConfig(tune_epochs=-1)
    with pytest.raises(ValueError, match="score batches"):
        SelectConfig(score_batches=-2)
    assert SelectConfig().label() == "pt-tunepaper-scoreall-seed0" and QUICK.label() == "pt-tune0.5-score1-seed0"


def test_a_pt_arm_shares_the_searches_of_the_other_arms():
    from pcdarts.experiments.study import Arm, StudyConfig, _search_identity

    pt = Arm.parse("pt:select=pt,select_tune_epochs=0.5,select_score_batches=4")
    cfg = StudyConfig(arms=(Arm("pcdarts"), pt))
    assert _search_identity(pt, 1) == _search_identity(Arm("pcdarts"), 1)
    assert cfg.select_config(pt) == SelectConfig(tune_epochs=0.5, score_batches=4)
    assert cfg.select_config(Arm("pcdarts")) is None and cfg.search_config(pt, 0).epochs > 0
    with pytest.raises(ValueError, match="arm 'bad'"):
        StudyConfig(arms=(Arm.parse("bad:select=magnitude"),)).select_config(Arm.parse("bad:select=magnitude"))


def test_ties_are_broken_by_the_magnitude_rule_and_recorded(tiny_search, tmp_path):
    sel = Selector(tiny_search, tmp_path / "sel", QUICK, progress=False)
    sel._build(torch.device("cpu"))
    with torch.no_grad():  # on edge 4, dil_conv_3x3 has the larger alpha of the two tied ops
        sel.model.alphas_normal[4].zero_()
        sel.model.alphas_normal[4, PRIMITIVES.index("dil_conv_3x3")] = 2.0
    sel.decider.score = lambda probe: (
        0.5 if probe is None else (0.2 if PRIMITIVES[probe[2]] in ("sep_conv_3x3", "dil_conv_3x3") else 0.4)
    )
    d = sel.decider.decide_op("normal", 4)
    assert d["choice"] == "dil_conv_3x3"
    assert sorted(d["tie"]["between"]) == ["dil_conv_3x3", "sep_conv_3x3"] and "alpha" in d["tie"]["broken_by"]
    d = sel.decider.decide_op("normal", 5)  # no tie: nothing recorded
    sel.decider.score = lambda probe: 0.5 if probe is None else 0.1 * PRIMITIVES.index("none")  # every op ties
    d = sel.decider.decide_op("normal", 6)
    assert len(d["tie"]["between"]) == N_OPS - 1
    node = node_edges(4)[3]
    strength = sel.decider.edge_strength("reduce")
    sel.decider.score = lambda probe: (
        0.3
    )  # every edge's removal leaves the same accuracy: drop the weakest by magnitude
    d = sel.decider.decide_node("reduce", 3)
    first = d["steps"][0]
    assert first["dropped"] == min(node, key=lambda e: (strength[e], -e)) and "tie" in first


def test_a_selection_counts_its_ties(tiny_search, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="pcdarts.runs.select"):
        result = run_select(tiny_search, tmp_path / "sel", SelectConfig(tune_epochs=0, score_batches=1, threads=1),
                            progress=False)  # fmt: skip
    decisions = json.loads((tmp_path / "sel" / "decisions.json").read_text())
    counted = sum("tie" in d for d in decisions) + sum("tie" in s for d in decisions for s in d.get("steps", []))
    assert result["ties"] == counted
    assert (counted > 0) == ("decisions were ties" in caplog.text)
