"""The numerics that matter, on the device chosen with ``pytest --device`` (cpu in CI; cuda on a GPU machine).

Float64 where the device supports it, so the comparisons are exact up to rounding; a training and a search
step and a resumed search on the device itself. Without a GPU, ``--device cuda`` skips them with the reason.
"""

import pytest
import torch
import torch.nn.functional as F

from pcdarts.nas.architect import Architect
from pcdarts.nas.genotype import GENOTYPES
from pcdarts.nas.network import build_network
from pcdarts.nas.supernet import SearchNetwork
from pcdarts.runs.engine import search_step, train_step


def _net(device, k=4, dtype=torch.float64):
    torch.manual_seed(0)
    net = SearchNetwork(num_classes=5, init_channels=8, layers=3, k=k).to(device=device, dtype=dtype)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.normal_()
    return net


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


def test_custom_backwards_equal_autograd_on_the_device(device):
    """The supernet's fused BN, depthwise and max-pool kernels against the reference habits on the same
    parameters (float64): logits and every weight and alpha/beta gradient."""
    from tests.nas.test_supernet import _reference_twin

    net = _net(device)
    ref = _reference_twin(net).to(device)
    x = torch.randn(4, 3, 12, 12, dtype=torch.float64, device=device)
    y = torch.tensor([0, 1, 2, 3], device=device)
    results = []
    for model in (net, ref):
        logits = model(x)
        params = model.weight_parameters() + model.arch_parameters()
        results.append((logits, torch.autograd.grad(F.cross_entropy(logits, y), params)))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-9, atol=1e-12)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_search_and_training_steps_run_and_learn_on_the_device(device):
    net = _net(device, dtype=torch.float32)
    arch = Architect(net, lr=6e-3, betas=(0.5, 0.999), weight_decay=1e-3)
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(16, 3, 16, 16, device=device)
    y = torch.randint(0, 5, (16,), device=device)
    alpha0 = net.alphas_normal.detach().clone()
    losses = [float(search_step(net, net, arch, opt, x, y, (x, y), grad_clip=5.0)[0].detach()) for _ in range(5)]
    assert losses[-1] < losses[0] and not torch.equal(alpha0, net.alphas_normal.detach())
    model = build_network(GENOTYPES["PC_DARTS_cifar"], num_classes=5, init_channels=8, layers=5, auxiliary=True).to(
        device
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    params = list(model.parameters())
    losses = [float(train_step(model, opt, params, x, y, grad_clip=5.0, auxiliary_weight=0.4)[0].detach())
              for _ in range(5)]  # fmt: skip
    assert losses[-1] < losses[0]


def test_a_resumed_search_equals_an_uninterrupted_one_on_the_device(device, tmp_path, stop_after):
    from pcdarts.runs.config import SearchConfig
    from pcdarts.runs.search import run_search

    if device.type == "cuda":
        pytest.importorskip("torch.cuda")
    cfg = SearchConfig(dataset="synthetic", image_size=8, init_channels=4, layers=3, epochs=2, warmup_epochs=1,
                       batch_size=64, device=str(device), deterministic=device.type == "cuda", threads=1)  # fmt: skip
    whole = run_search(cfg, tmp_path / "a", progress=False)
    with stop_after(1):
        part = run_search(cfg, tmp_path / "b", progress=False)
    assert part["stopped"]
    resumed = run_search(cfg, tmp_path / "b", resume=True, progress=False)
    assert resumed["genotype"] == whole["genotype"]
    a = (tmp_path / "a" / "arch.json").read_text()
    assert a == (tmp_path / "b" / "arch.json").read_text()


def test_streams_draw_on_the_data_device_and_resume_there(device):
    """No host-to-device copy per batch: the permutation moves once an epoch, augmentation draws on the device."""
    from pcdarts.data.augment import Augment
    from pcdarts.data.stream import BatchStream

    x, y = torch.randint(0, 256, (24, 1, 6, 6), dtype=torch.uint8), torch.arange(24) % 4
    s = BatchStream(x, y, 8, mean=(0.5,), std=(0.25,), augment=Augment(2, True, 2), seed=1, device=device)
    assert s.aug_gen.device.type == device.type
    first = next(iter(s.epoch()))
    state = s.state_dict()
    rest = [b for b in s.epoch()]
    again = BatchStream(x, y, 8, mean=(0.5,), std=(0.25,), augment=Augment(2, True, 2), seed=1, device=device)
    again.load_state_dict(state)
    assert first[0].device.type == device.type
    for (a, ya), (b, yb) in zip(rest, again.epoch()):
        assert torch.equal(a, b) and torch.equal(ya, yb)
