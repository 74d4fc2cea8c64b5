"""runs.engine: an evaluation pass split by class, the epoch line's time left, the official ImageNet schedule, and
search and training steps that learn on the device of ``pytest --device``."""

import pytest
import torch

from pcdarts.nas.architect import Architect
from pcdarts.nas.genotype import GENOTYPES
from pcdarts.nas.network import build_network
from pcdarts.nas.supernet import SearchNetwork
from pcdarts.runs.engine import linear_warmup_decay_lr, search_step, train_step


def test_the_eta_counts_arch_epochs_at_twice_a_warm_up_epoch():
    from pcdarts.runs.engine import epoch_line

    record = {"train_loss": 1.0, "train_acc": 0.5, "epoch_seconds": 10.0}
    cost = lambda e: 2.0 if e >= 1 else 1.0  # noqa: E731 - one warm-up epoch, then arch epochs
    assert "ETA 40 s" in epoch_line("search", record, 0, 3, 10.0, 0, cost)  # two arch epochs of 20 s
    assert "ETA 20 s" in epoch_line("train", record, 0, 3, 10.0, 0)  # plain epochs
    assert "ETA 20 s" in epoch_line("search", record, 1, 3, 30.0, 1, cost)  # resumed: earlier time counted


def test_evaluate_splits_top1_by_class():
    from pcdarts.data import final_test_part, make_stream
    from pcdarts.data.datasets import TensorDataset
    from pcdarts.runs.engine import evaluate

    class Fixed(torch.nn.Module):  # predicts class 0 for everything
        def forward(self, x):
            return torch.tensor([[1.0, 0.0, 0.0]]).repeat(len(x), 1)

    x = torch.zeros(6, 1, 4, 4)
    y = torch.tensor([0, 0, 1, 1, 1, 0])
    ds = TensorDataset("t", x, y, x, y, 3, (0.0,), (1.0,))
    stats = evaluate(Fixed(), make_stream(ds, final_test_part(ds), 4, train=False))
    assert stats["per_class"] == [1.0, 0.0, None] and stats["top1"] == 0.5


def test_official_imagenet_training_schedule():
    lr = [linear_warmup_decay_lr(e, 250, 0.5, 5) for e in range(250)]
    assert lr[:5] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert lr[5] == pytest.approx(0.5 * 240 / 245) and lr[244] == pytest.approx(0.5 * 1 / 245)
    assert lr[245] == pytest.approx(0.5 * 5 / (245 * 5)) and lr[249] == pytest.approx(0.5 / (245 * 5))


def _net(device, k=4, dtype=torch.float64):
    torch.manual_seed(0)
    net = SearchNetwork(num_classes=5, init_channels=8, layers=3, k=k).to(device=device, dtype=dtype)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.normal_()
    return net


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
