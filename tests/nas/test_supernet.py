import pytest
import torch

from pcdarts.nas.architect import Architect
from pcdarts.nas.candidates import PRIMITIVES
from pcdarts.nas.derive import node_edge_weights
from pcdarts.nas.supernet import MixedOp, PartialEdge, SearchNetwork, cat_shuffle, channel_shuffle


def test_channel_shuffle_is_the_interleaving_permutation():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    y = channel_shuffle(x, 4).flatten().tolist()
    # groups of 2 channels [0,1],[2,3],[4,5],[6,7] interleave -> 0,2,4,6,1,3,5,7
    assert y == [0, 2, 4, 6, 1, 3, 5, 7]


@pytest.mark.parametrize("k", [2, 4, 8])
def test_cat_shuffle_is_cat_then_shuffle_exactly(k):
    y, bypass = torch.randn(3, 2, 5, 4), torch.randn(3, 2 * (k - 1), 5, 4)
    assert torch.equal(cat_shuffle(y, bypass, k), channel_shuffle(torch.cat([y, bypass], 1), k))


def _reference_twin(net):
    import copy

    from pcdarts.bench.reference import to_reference

    return to_reference(copy.deepcopy(net))


@pytest.mark.parametrize(("k", "edge_norm", "mode"), [(1, True, "shuffle"), (4, True, "shuffle"), (4, False, "shift")])
@pytest.mark.parametrize("recompute", ["none", "edges", "cells"])
def test_lean_supernet_matches_the_reference_forward(k, edge_norm, mode, recompute, monkeypatch):
    """pcdarts's supernet (shared ReLU, fused BN, no max-pool indices, per-node join, recomputation) against the
    reference's way on the same parameters: same logits, gradients for weights and alpha/beta, BN statistics.

    In float64, so that the bound shows the algebra is the same (float32 rounding, amplified by batch norm over
    a tiny batch, would need a loose bound that could hide a real error).
    """
    from pcdarts.nas import kernels

    torch.manual_seed(0)
    net = SearchNetwork(
        num_classes=5, init_channels=8, layers=3, k=k, edge_norm=edge_norm, partial_mode=mode, recompute=recompute
    ).double()
    ref = _reference_twin(net)
    x, y = torch.randn(4, 3, 12, 12, dtype=torch.float64), torch.tensor([0, 1, 2, 3])
    calls = []
    for fn in (kernels.DepthwiseConvFn, kernels.MaxPoolFn, kernels.ScaledBatchNormFn):
        monkeypatch.setattr(fn, "apply", (lambda apply, name: lambda *a: calls.append(name) or apply(*a))(fn.apply, fn))
    results = []
    for model in (net, ref):
        calls.clear()
        logits = model(x)
        params = model.weight_parameters() + model.arch_parameters()
        grads = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y), params)
        results.append((logits, grads, [b.clone() for b in model.buffers()], len(calls)))
    assert results[0][3] > 0 and results[1][3] == 0  # the lean kernels really ran, and only in pcdarts's forward
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-9, atol=1e-12)
    for g_lean, g_ref in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(g_lean, g_ref, rtol=1e-9, atol=1e-12)
    for b_lean, b_ref in zip(results[0][2], results[1][2]):  # running stats moved once, even when recomputed
        torch.testing.assert_close(b_lean, b_ref, rtol=1e-9, atol=1e-12)


def test_lean_supernet_keeps_fewer_bytes_and_recompute_fewer_still():
    from pcdarts.runs.memory import saved_activation_bytes

    torch.manual_seed(0)
    net = SearchNetwork(num_classes=5, init_channels=8, layers=3, k=2)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    ref = saved_activation_bytes(_reference_twin(net), x, y)
    lean = saved_activation_bytes(net, x, y)
    net.recompute = "edges"
    edges = saved_activation_bytes(net, x, y)
    net.recompute = "cells"
    cells = saved_activation_bytes(net, x, y)
    assert cells < edges < 0.7 * lean and lean < 0.7 * ref


def test_recompute_is_off_in_eval_and_refused_for_the_unrolled_step():

    net = SearchNetwork(num_classes=3, init_channels=4, layers=3, k=2, recompute="cells")
    with torch.no_grad():
        net.eval()(torch.randn(2, 3, 8, 8))  # no checkpointing without a backward pass
    net.train()
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.1)
    arch = Architect(net, lr=0.1, unrolled=True)
    x, y = torch.randn(2, 3, 8, 8), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="recompute"):
        arch.step(x, y, x_train=x, y_train=y, eta=0.1, w_optimizer=w_opt)
    with pytest.raises(Exception, match="recompute must be"):
        net.recompute = "layers"


@pytest.mark.parametrize("stride", [1, 2])
def test_only_c_over_k_channels_go_through_the_ops(stride):
    c, k = 8, 4
    edge = PartialEdge(c, stride, k)
    seen = []
    edge.op.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    x = torch.randn(2, c, 6, 6)
    w = torch.softmax(torch.randn(len(PRIMITIVES)), 0)
    y = edge(x, w)
    assert seen == [c // k]
    assert y.shape == (2, c, 6 // stride, 6 // stride)
    # Undo the shuffle: the last C - C/K channels are the input's, untouched (max-pooled when strided).
    unshuffled = y.view(2, c // k, k, *y.shape[2:]).transpose(1, 2).reshape(y.shape)
    bypass = x[:, c // k :]
    if stride == 2:
        bypass = torch.nn.functional.max_pool2d(bypass, 2, 2)
    torch.testing.assert_close(unshuffled[:, c // k :], bypass)
    torch.testing.assert_close(unshuffled[:, : c // k], edge.op(x[:, : c // k], w))


def test_shift_mode_moves_processed_channels_to_the_end():
    edge = PartialEdge(8, 1, 4, mode="shift")
    x = torch.randn(2, 8, 5, 5)
    w = torch.softmax(torch.randn(len(PRIMITIVES)), 0)
    y = edge(x, w)
    torch.testing.assert_close(y[:, :6], x[:, 2:])


def test_k1_is_a_plain_weighted_sum_of_all_ops():
    edge = PartialEdge(4, 1, 1).eval()
    x = torch.randn(2, 4, 6, 6)
    w = torch.softmax(torch.randn(len(PRIMITIVES)), 0)
    expect = sum(w[k] * op(x) for k, op in zip(edge.op.op_index, edge.op.ops))
    torch.testing.assert_close(edge(x, w), expect)


def test_none_is_skipped_not_computed():
    m = MixedOp(4, 1)
    assert PRIMITIVES.index("none") not in m.op_index and len(m.ops) == len(PRIMITIVES) - 1


def test_c_not_divisible_by_k_is_refused():
    with pytest.raises(ValueError, match="divisible by K=3"):
        SearchNetwork(num_classes=10, init_channels=8, layers=3, k=3)


def test_edge_weights_sum_to_one_per_node():
    betas = torch.randn(14)
    w = node_edge_weights(betas, 4)
    sums = [w[s : s + n].sum().item() for s, n in ((0, 2), (2, 3), (5, 4), (9, 5))]
    assert sums == pytest.approx([1.0] * 4)


def test_arch_parameters_are_registered_and_disjoint():
    net = SearchNetwork(num_classes=10, init_channels=8, layers=3, k=4)
    arch, weights = net.arch_parameters(), net.weight_parameters()
    assert {id(p) for p in arch}.isdisjoint({id(p) for p in weights})
    assert len(arch) + len(weights) == len(list(net.parameters()))
    sd = net.state_dict()
    for name in ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce"):
        assert name in sd
    assert sd["alphas_normal"].shape == (14, 8) and sd["betas_normal"].shape == (14,)


@pytest.mark.parametrize("stem,size", [("cifar", 16), ("cifar", 13), ("imagenet", 64)])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_supernet_forward_any_input(stem, size, k):
    net = SearchNetwork(num_classes=5, in_channels=1, init_channels=8, layers=3, k=k, stem=stem)
    out = net(torch.randn(2, 1, size, size))
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in net.arch_parameters())


def test_edge_norm_off_leaves_betas_out_of_the_graph():
    net = SearchNetwork(num_classes=3, in_channels=1, init_channels=4, layers=3, k=2, edge_norm=False)
    net(torch.randn(2, 1, 8, 8)).sum().backward()
    assert net.betas_normal.grad is None and net.alphas_normal.grad is not None


def test_bf16_autocast_stays_close_to_fp32():
    """bf16 changes numerics: bound the logit difference of the supernet against the fp32 path."""
    from pcdarts.runs.engine import autocast

    net = SearchNetwork(num_classes=5, in_channels=1, init_channels=8, layers=3, k=4).eval()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        ref = net(x)
        with autocast("bf16", x.device):
            low = net(x).float()
    assert (low - ref).abs().max() <= 0.05 * ref.abs().max() + 0.05


def test_fused_batch_norm_refuses_one_value_per_channel_as_batch_norm_does():
    """N*H*W == 1 has no variance: nn.BatchNorm2d raises; the fused path must not write NaN running stats."""
    from pcdarts.nas.kernels import scaled_batch_norm

    bn = torch.nn.BatchNorm2d(2, affine=False)
    h, w = torch.randn(1, 2, 1, 1, requires_grad=True), torch.tensor(0.5, requires_grad=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        scaled_batch_norm(h, w, bn)
    assert torch.isfinite(bn.running_var).all()


def _counting(monkeypatch, cls):
    calls = []
    forward = cls.forward
    monkeypatch.setattr(cls, "forward", lambda self, *a: calls.append(1) or forward(self, *a))
    return calls


def test_cells_run_edge_by_edge_where_fanning_out_does_not_apply(monkeypatch):
    """BN's cumulative average (momentum None) and BNs in mixed modes take the edge-by-edge path; autocast
    fans out (its numerics under autocast: tests/nas/test_fanout.py)."""
    from pcdarts.nas.fanout import FanOut
    from pcdarts.runs.engine import autocast

    net = SearchNetwork(num_classes=3, init_channels=8, layers=3, k=4)
    x = torch.randn(2, 3, 8, 8)
    fans = _counting(monkeypatch, FanOut)
    with torch.no_grad(), autocast("bf16", x.device):
        net(x)
    assert len(fans) == 15  # 3 cells x 5 states, under autocast too
    fans.clear()
    net.cells[0].edges[3].eval()
    net(x).sum().backward()
    assert len(fans) == 10  # the two other cells fanned out
    net.train()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    net(x).sum().backward()
    net.recompute = "cells"  # the recomputing pass freezes momentum to 0 and must still run edge by edge
    net(x).sum().backward()
    net.recompute = "none"
    assert len(fans) == 10
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1
    net.cells[1].edges[0].op.ops[0][1].momentum = 0.5  # one BN unlike the others: its cell runs edge by edge
    net(x).sum().backward()
    assert len(fans) == 20


def test_recompute_segments_are_measured_for_both_modes_and_both_cells(monkeypatch):
    from pcdarts.nas.nb201_search import NB201SearchNetwork
    from pcdarts.runs.memory import largest_segment_bytes

    x, y = torch.randn(2, 3, 8, 8), torch.tensor([0, 1])
    for net in (SearchNetwork(num_classes=3, init_channels=8, layers=3, k=4),
                NB201SearchNetwork(num_classes=3, init_channels=8, layers=3, k=4)):  # fmt: skip
        for fan in (True, False):  # edges fanned out per state, or edge by edge
            monkeypatch.setattr(type(net.cells[0]), "_fans_out", lambda self, h, fan=fan: fan)
            edges, cells = (largest_segment_bytes(net, x, y, mode) for mode in ("edges", "cells"))
            assert 0 < edges < cells and largest_segment_bytes(net, x, y, "none") == 0, (type(net), fan)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("wanted", [(True, True), (True, False), (False, True)])
def test_the_fused_scaled_batch_norm_backward_equals_autograd(per_channel, wanted):
    """``w * BN(h)`` through ScaledBatchNormFn (one native BN backward, w as gamma) against autograd, float64,
    for the input, the weight, or both (the weight step asks for the input's only)."""
    import torch.nn.functional as F

    from pcdarts.nas.kernels import ScaledBatchNormFn

    g = torch.Generator().manual_seed(0)
    h = torch.randn(4, 6, 5, 5, generator=g, dtype=torch.float64)
    w = torch.rand(6 if per_channel else (), generator=g, dtype=torch.float64) + 0.5
    up = torch.randn(4, 6, 5, 5, generator=g, dtype=torch.float64)
    h.requires_grad_(wanted[0])
    w.requires_grad_(wanted[1])
    inputs = [t for t, want in zip((h, w), wanted) if want]
    stats = [torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)]
    mine = torch.autograd.grad(ScaledBatchNormFn.apply(h, w, *stats, 0.1, 1e-5), inputs, up)
    shape = (1, -1, 1, 1) if per_channel else ()
    ref_stats = [torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)]
    ref = w.view(shape) * F.batch_norm(h, *ref_stats, None, None, True, 0.1, 1e-5)
    theirs = torch.autograd.grad(ref, inputs, up)
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(stats, ref_stats, rtol=0, atol=0)  # the running statistics moved alike


def test_imagenet_supernet_stem_uses_the_stem_multiplier():
    net = SearchNetwork(num_classes=10, init_channels=16, layers=8, k=2, stem="imagenet")
    convs = [m for m in [*net.stem0, *net.stem1] if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [(3, 24, 2), (24, 48, 2), (48, 48, 2)]
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 10)
