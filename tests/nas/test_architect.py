import pytest
import torch
import torch.nn.functional as F

from pcdarts.nas.architect import Architect
from pcdarts.nas.supernet import SearchNetwork


def _setup(unrolled=False):
    net = SearchNetwork(num_classes=4, in_channels=1, init_channels=4, layers=3, k=2)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    arch = Architect(net, lr=0.1, unrolled=unrolled)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 4, (8,))
    return net, w_opt, arch, x, y


def test_first_order_step_moves_only_alpha_beta_and_leaves_no_weight_grads():
    net, w_opt, arch, x, y = _setup()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    loss = arch.step(x, y)
    assert torch.isfinite(loss)
    for n, p in net.named_parameters():
        moved = not torch.equal(before[n], p.detach())
        assert moved == (n in net._ARCH), n
        assert p.grad is None, n  # weight grads were never computed, arch grads were cleared


def test_first_order_gradient_equals_plain_autograd():
    net, w_opt, arch, x, y = _setup()
    loss = F.cross_entropy(net(x), y)
    expect = torch.autograd.grad(loss, net.arch_parameters())
    torch.manual_seed(0)
    captured = []
    arch.optimizer.step = lambda: captured.extend(p.grad.clone() for p in arch.params)
    arch.step(x, y)
    for a, b in zip(captured, expect):
        torch.testing.assert_close(a, b)


def test_unrolled_with_zero_eta_equals_first_order():
    net, w_opt, arch, x, y = _setup(unrolled=True)
    net.eval()  # BN in eval so both paths see identical statistics
    expect = torch.autograd.grad(F.cross_entropy(net(x), y), net.arch_parameters())
    _, grads = arch._unrolled_grads(x, y, x, y, 0.0, w_opt)
    for a, b in zip(grads, expect):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_unrolled_step_runs_and_changes_alpha_without_touching_weights_or_bn_stats():
    net, w_opt, arch, x, y = _setup(unrolled=True)
    weights = [p.detach().clone() for p in net.weight_parameters()]
    bufs = [b.clone() for b in net.buffers()]
    a0 = net.alphas_normal.detach().clone()
    loss = arch.step(x, y, x_train=x, y_train=y, eta=0.1, w_optimizer=w_opt)
    assert torch.isfinite(loss)
    assert not torch.equal(a0, net.alphas_normal)
    assert all(torch.equal(a, b) for a, b in zip(weights, net.weight_parameters()))
    assert all(torch.equal(a, b) for a, b in zip(bufs, net.buffers()))


def test_unrolled_needs_the_train_batch():
    net, w_opt, arch, x, y = _setup(unrolled=True)
    with pytest.raises(ValueError, match="train batch"):
        arch.step(x, y)


def test_edge_norm_off_arch_step_runs_and_leaves_beta_alone():
    """The --no-edge-norm ablation: beta is not in the graph, so only alpha is an arch parameter."""
    net = SearchNetwork(num_classes=4, in_channels=1, init_channels=4, layers=3, k=2, edge_norm=False)
    arch = Architect(net, lr=0.1)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 4, (8,))
    b0, a0 = net.betas_normal.detach().clone(), net.alphas_normal.detach().clone()
    assert torch.isfinite(arch.step(x, y))
    assert not torch.equal(a0, net.alphas_normal)
    assert torch.equal(b0, net.betas_normal)
    assert set(net.arch_state()) == {"alphas_normal", "alphas_reduce", "space", "ops"}


def test_beta_decay_gradient_is_softmax_over_edges_and_joins_the_arch_gradient():
    from pcdarts.nas.architect import beta_decay_loss

    net, _, arch, x, y = _setup()
    g = torch.autograd.grad(beta_decay_loss(net), [net.alphas_normal])[0]
    e = net.alphas_normal.shape[0]
    torch.testing.assert_close(g, torch.softmax(net.alphas_normal.detach(), -1) / e)
    expect = torch.autograd.grad(F.cross_entropy(net(x), y) + 3.0 * beta_decay_loss(net), net.arch_parameters())
    captured = []
    arch.reg_weight = 3.0
    arch.optimizer.step = lambda: captured.extend(p.grad.clone() for p in arch.params)
    arch.step(x, y)
    for a, b in zip(captured, expect):
        torch.testing.assert_close(a, b)


def test_arch_gradient_clip():
    net = SearchNetwork(num_classes=4, in_channels=1, init_channels=4, layers=3, k=2)
    arch = Architect(net, lr=0.1, grad_clip=1e-6)
    captured = []
    arch.optimizer.step = lambda: captured.append(torch.cat([p.grad.flatten() for p in arch.params]).norm())
    arch.step(torch.randn(8, 1, 8, 8), torch.randint(0, 4, (8,)))
    assert float(captured[0]) <= 1e-6 * 1.01
