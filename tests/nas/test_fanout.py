"""nas.fanout: the fanned-out cell and its batch norms under bf16 autocast, on the device of ``pytest --device``."""

import torch

from pcdarts.nas.supernet import SearchNetwork


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
