"""Collapse remedies: the P-DARTS cap, DARTS+ early stopping, the Beta-Decay schedule."""

import torch

from pcdarts.nas.candidates import PRIMITIVES
from pcdarts.nas.derive import derive_genotype
from pcdarts.nas.genotype import Genotype, param_free_count, random_genotype
from pcdarts.nas.remedies import beta_decay_weight, early_stop_reason, select_from_history

P = {name: i for i, name in enumerate(PRIMITIVES)}


def _collapsed_alphas(runner_up="sep_conv_3x3"):
    """Every edge prefers max_pool strongly, then ``runner_up``."""
    a = torch.zeros(14, len(PRIMITIVES))
    a[:, P["max_pool_3x3"]] = 3.0
    a[:, P[runner_up]] = 1.0
    a[:, P["skip_connect"]] = 0.5
    return a


def test_cap_keeps_at_most_m_parameter_free_ops_and_falls_back_to_the_next_best_op():
    a = _collapsed_alphas()
    a[0, P["max_pool_3x3"]] = 4.0  # the strongest pool: it must survive a cap of 1
    plain = derive_genotype(a, torch.zeros(14, len(PRIMITIVES)))
    assert param_free_count(plain.normal) == 8
    for m in (0, 1, 2, 5):
        g = derive_genotype(a, torch.zeros(14, len(PRIMITIVES)), max_param_free=m)
        assert param_free_count(g.normal) == m
        assert {op for op, _ in g.normal} <= {"max_pool_3x3", "sep_conv_3x3"}  # skip (0.5) ranks below sep (1.0)
        assert g.reduce == plain.reduce  # max_param_free caps the normal cell only
    assert derive_genotype(a, torch.zeros(14, len(PRIMITIVES)), max_param_free=1).normal[0] == ("max_pool_3x3", 0)


def test_the_reduction_cell_has_a_cap_of_its_own():
    a = _collapsed_alphas()
    plain = derive_genotype(a, a)
    assert param_free_count(plain.reduce) == 8
    for m in (0, 2, 5):
        g = derive_genotype(a, a, max_param_free_reduce=m)
        assert param_free_count(g.reduce) == m and g.normal == plain.normal
    both = derive_genotype(a, a, max_param_free=1, max_param_free_reduce=3)
    assert (param_free_count(both.normal), param_free_count(both.reduce)) == (1, 3)
    hist = [{"epoch": 1, "alphas_normal": a.tolist(), "alphas_reduce": a.tolist()}]
    g, _, _ = select_from_history(hist, warmup_epochs=0, max_param_free_reduce=2)
    assert param_free_count(g.reduce) == 2 and param_free_count(g.normal) == 8


def test_search_warns_when_it_cannot_learn_and_counts_its_steps(capsys):
    from pcdarts.cli import main

    assert main(["search", "--dataset", "digits", "--print-config"]) == 0
    err = capsys.readouterr().err
    assert "12 steps an epoch: 36 warm-up steps, then 60 arch steps; 2 channels per candidate op" in err
    assert "2 channel(s) in the first cells" in err and "only 60 arch steps" in err
    assert main(["search", "--dataset", "digits", "--print-config", "--init-channels", "16", "--epochs", "120",
                 "--warmup-epochs", "30", "--batch-size", "64"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "warning" not in err and "1080 arch steps" in err


def test_cap_is_a_no_op_when_the_cell_is_already_under_it():
    torch.manual_seed(3)
    a, r = torch.randn(14, 8), torch.randn(14, 8)
    b = torch.randn(14)
    plain = derive_genotype(a, r, b, b)
    assert derive_genotype(a, r, b, b, max_param_free=8) == plain
    assert derive_genotype(a, r, b, b, max_param_free=-1) == plain


def test_beta_decay_weight_rises_linearly_from_zero():
    assert beta_decay_weight(0, epochs=100, weight=50) == 0.0
    assert beta_decay_weight(10, epochs=100, weight=50) == 5.0  # the beta-DARTS code: 50 * epoch / 100
    assert beta_decay_weight(7, epochs=8, weight=0.0) == 0.0


def _g(pools: int) -> Genotype:
    normal = tuple(("max_pool_3x3" if i < pools else "sep_conv_3x3", i % 2) for i in range(8))
    return Genotype(normal, (2, 3, 4, 5), normal, (2, 3, 4, 5))


def test_early_stop_criteria():
    assert early_stop_reason([_g(1), _g(2)], param_free=3) is None
    assert "3 parameter-free" in early_stop_reason([_g(1), _g(3)], param_free=3)
    assert early_stop_reason([_g(1), _g(2), _g(2)], stable=2) is None
    assert "unchanged for 2" in early_stop_reason([_g(2), _g(2), _g(2)], stable=2)
    assert early_stop_reason([_g(8)]) is None  # both off


def test_select_from_history_replays_early_stopping_and_the_cap():
    hist = []
    for epoch, pools in enumerate([8, 1, 2, 4, 5], 1):  # epoch 1 is warm-up: never a stopping point
        a = torch.zeros(14, 8)
        kept = [e for start in (0, 2, 5, 9) for e in (start, start + 1)]  # inputs 0 and 1 of each node win
        for i, e in enumerate(kept):
            a[e, P["max_pool_3x3"] if i < pools else P["sep_conv_3x3"]] = 3.0 + 0.1 * i
        hist.append({"epoch": epoch, "alphas_normal": a.tolist(), "alphas_reduce": a.tolist()})
    g, epoch, reason = select_from_history(hist, warmup_epochs=1, early_stop_param_free=3)
    assert epoch == 4 and reason is not None
    g, epoch, reason = select_from_history(hist, warmup_epochs=1, max_param_free=2)
    assert epoch == 5 and reason is None and param_free_count(g.normal) <= 2


def test_random_genotype_is_a_valid_derived_shape():
    for seed in range(20):
        g = random_genotype(seed)
        for cell in (g.normal, g.reduce):
            assert all(op != "none" for op, _ in cell)
            for node in range(4):
                a, b = cell[2 * node][1], cell[2 * node + 1][1]
                assert a != b and max(a, b) < node + 2
    assert random_genotype(1) == random_genotype(1) and random_genotype(1) != random_genotype(2)
