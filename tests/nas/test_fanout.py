"""nas.fanout: the fanned-out cell against the same cell run edge by edge (float64, every space and op), and
its batch norms under bf16 autocast, on the device of ``pytest --device``."""

import copy

import pytest
import torch
import torch.nn.functional as F

from pcdarts.nas.candidates import OPS, SPACES
from pcdarts.nas.nb201_search import NB201SearchNetwork
from pcdarts.nas.supernet import SearchNetwork
from tests.nas.user_ops import SPACE_CASES

OP_CASES = sorted(op for op in OPS if not OPS[op].zero)  # every registered op, in a space or not (the user's too)


def _darts_case(ops, k, size, min_calls):
    """A DARTS-cell supernet over ``ops``: 5 classes, 3 cells, 3-channel ``size`` x ``size`` images."""
    build = lambda: SearchNetwork(num_classes=5, init_channels=8, layers=3, k=k, ops=ops)  # noqa: E731
    return build, (3, 3, size, size), [0, 1, 4], min_calls, ()


def _nb201_case(k, edge_norm, recompute):
    """A NAS-Bench-201 supernet: 3 classes, 1-channel 9x9 images; beta takes no part without edge normalisation."""
    build = lambda: NB201SearchNetwork(num_classes=3, in_channels=1, init_channels=8, layers=3, k=k,  # noqa: E731
                                       edge_norm=edge_norm, recompute=recompute)  # fmt: skip
    return build, (4, 1, 9, 9), [0, 1, 2, 0], 1, () if edge_norm else ("betas_normal",)


FANOUT_CASES = [
    *(pytest.param(*_darts_case(ops, k, size, 3 * 5), id=f"darts-cell-{name}-k{k}-{size}")  # five states feed edges in
      for name, ops in zip([*SPACES, "custom"], SPACE_CASES)  # each of the three cells: the fan-out really ran
      for k, size in [(1, 9), (1, 13), (4, 13), (4, 16)]),
    # one op at a time (with ``none``), so an op the fan-out got wrong cannot hide behind the others
    *(pytest.param(*_darts_case(("none", op), 2, 11, 0), id=f"alone-{op}") for op in OP_CASES),
    *(pytest.param(*_nb201_case(k, edge_norm, recompute), id=f"nasbench201-cell-k{k}-norm{int(edge_norm)}-{recompute}")
      for k, edge_norm, recompute in [(1, False, "none"), (4, True, "none"), (4, False, "edges"), (2, True, "cells")]),
]  # fmt: skip


@pytest.mark.parametrize(("build", "shape", "targets", "min_calls", "unused"), FANOUT_CASES)
def test_the_fanned_cell_equals_the_cell_run_edge_by_edge(build, shape, targets, min_calls, unused, monkeypatch,
                                                          device):  # fmt: skip
    """The one fan-out equivalence test: each state's edges computed together (shared pooling and identity,
    stacked convs and BNs) against the same cell run edge by edge, on the same parameters, in float64, for each
    shipped DARTS space and one with the user's ops mixed in, each op alone, and the NAS-Bench-201 cell (with
    and without edge normalisation, and recomputing edges or cells): logits, every gradient, running statistics
    and batch counters, and evaluation on each module's own statistics. Odd sizes reach the strided edges'
    padding and FactorizedReduce's odd branch. On the device of ``pytest --device`` (the CPU in CI, a GPU
    where the machine has one)."""
    from pcdarts.nas.fanout import FanOut

    torch.manual_seed(0)
    net = build().to(device, torch.float64)
    cells = {type(m) for m in net.modules() if hasattr(type(m), "_fans_out")}
    assert cells  # the cell classes whose fast path the twin is kept off

    def edge_by_edge():
        for cls in cells:
            monkeypatch.setattr(cls, "_fanned", None)  # the twin may not take the fast path
            monkeypatch.setattr(cls, "_fans_out", lambda self, h: False)

    with torch.no_grad():
        for p in net.arch_parameters():
            p.normal_()
    twin = copy.deepcopy(net)
    x = torch.randn(*shape, dtype=torch.float64).to(device)
    y = torch.tensor(targets, device=device)
    calls = []
    forward = FanOut.forward
    monkeypatch.setattr(FanOut, "forward", lambda self, *a: calls.append(1) or forward(self, *a))
    results = []
    for model in (net, twin):
        logits = model(x)
        names, params = zip(*model.named_parameters())
        grads = torch.autograd.grad(F.cross_entropy(logits, y), params, allow_unused=True)
        assert tuple(n for n, g in zip(names, grads) if g is None) == unused  # every other parameter takes part
        grads = [g for g in grads if g is not None]
        results.append((logits, grads, [b.clone() for b in model.buffers()]))
        if model is net:
            assert len(calls) >= min_calls
        edge_by_edge()
    monkeypatch.undo()
    (logits, grads, buffers), (logits2, grads2, buffers2) = results
    assert len(grads) == len(grads2) and len(buffers) == len(buffers2)
    for a, b in zip([logits, *grads, *buffers], [logits2, *grads2, *buffers2]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    with torch.no_grad():  # evaluation: each module's own running statistics
        for m in net.modules():  # make every BN's statistics differ, as no training step would
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
        twin.load_state_dict(net.state_dict())
        fanned = net.eval()(x)
        edge_by_edge()
        torch.testing.assert_close(fanned, twin.eval()(x), rtol=1e-9, atol=1e-12)
    monkeypatch.undo()


def test_fanned_cell_under_bf16_autocast_stays_as_close_to_fp32_as_edge_by_edge(device):
    """Under autocast the fan-out runs too (one launch per conv kind, not per edge). bf16 rounds both ways of
    computing the cell, so the fan-out is held to the edge-by-edge error (twice it at most, seeds vary) and both
    to fixed bounds against fp32: logits, alpha/beta and weight gradients, and the moves of the BN running
    statistics (which the fan-out makes for every edge at once)."""
    from pcdarts.bench.reference import AUTOCAST_BOUNDS, autocast_errors

    torch.manual_seed(0)
    net = SearchNetwork(num_classes=5, init_channels=16, layers=5, k=4).to(device)
    x = torch.randn(8, 3, 16, 16, device=device)
    y = torch.randint(0, 5, (8,), device=device)
    errors = autocast_errors(net, x, y, "bf16")
    assert errors["fanned_cells"] == 5  # every cell fanned out under autocast
    fan, edge = errors["fan-out"], errors["edge by edge"]
    for key, bound in AUTOCAST_BOUNDS.items():  # CPU, seed 0: fan-out / edge by edge 0.92-1.22 of each other
        assert fan[key] <= 2 * edge[key], f"{key}: fan-out {fan[key]:.3g} against edge by edge {edge[key]:.3g}"
        assert max(fan[key], edge[key]) <= bound, f"{key}: {fan[key]:.3g} / {edge[key]:.3g} over {bound}"


def test_fanned_batch_norms_under_bf16_autocast_keep_each_bn_statistics(device):
    """The fan-out's BNs on bf16 input (autocast) against one nn.BatchNorm2d per edge on the same input: the same
    output to bf16 rounding, the same running statistics (kept in float32 by both) and the same counters."""
    from pcdarts.nas.fanout import shared_batch_norm, stacked_batch_norm, stacked_scaled_batch_norm
    from pcdarts.runs.engine import autocast

    def bns(n):
        return [torch.nn.BatchNorm2d(3, affine=False).to(device) for _ in range(n)]

    h = torch.randn(4, 6, 5, 5, device=device).bfloat16().requires_grad_(True)
    w = torch.tensor([0.3, 0.7], device=device, requires_grad=True)
    with autocast("bf16", device):
        shared, alone = bns(2), bns(2)
        got = shared_batch_norm(h[:, :3], shared)  # (N, 1, C, H, W): one value for every edge
        want = [b(h[:, :3]) for b in alone]
        stacked, stacked_alone = bns(2), bns(2)
        got_stacked = stacked_batch_norm(h, stacked)
        want_stacked = torch.cat([b(h[:, 3 * e : 3 * e + 3]) for e, b in enumerate(stacked_alone)], 1)
        scaled, scaled_alone = bns(2), bns(2)
        got_scaled = stacked_scaled_batch_norm(h, w, scaled)
        want_scaled = torch.cat([w[e] * b(h[:, 3 * e : 3 * e + 3]) for e, b in enumerate(scaled_alone)], 1)
    torch.testing.assert_close(got[:, 0].float(), want[0].float(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(got_stacked.float(), want_stacked.float(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(got_scaled.float(), want_scaled.float(), rtol=2e-2, atol=2e-2)
    for mine, theirs in ((shared, alone), (stacked, stacked_alone), (scaled, scaled_alone)):
        for a, b in zip(mine, theirs):
            assert a.running_mean.dtype == torch.float32
            assert int(a.num_batches_tracked) == int(b.num_batches_tracked) == 1
            torch.testing.assert_close(a.running_mean, b.running_mean, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(a.running_var, b.running_var, rtol=1e-5, atol=1e-6)
