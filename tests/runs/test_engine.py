"""runs.engine: an evaluation pass split by class, and the epoch line's time left."""

import torch


def test_the_eta_counts_arch_epochs_at_twice_a_warm_up_epoch():
    from pcdarts.runs.engine import epoch_line

    record = {"train_loss": 1.0, "train_acc": 0.5, "epoch_seconds": 10.0}
    cost = lambda e: 2.0 if e >= 1 else 1.0  # noqa: E731 - one warm-up epoch, then arch epochs
    assert "ETA 40 s" in epoch_line("search", record, 0, 3, 10.0, 0, cost)  # two arch epochs of 20 s
    assert "ETA 20 s" in epoch_line("train", record, 0, 3, 10.0, 0)  # plain epochs
    assert "ETA 20 s" in epoch_line("search", record, 1, 3, 30.0, 1, cost)  # resumed: earlier time counted


def test_evaluate_splits_top1_by_class():
    from pcdarts.data import holdout_part, make_stream
    from pcdarts.data.datasets import TensorDataset
    from pcdarts.runs.engine import evaluate

    class Fixed(torch.nn.Module):  # predicts class 0 for everything
        def forward(self, x):
            return torch.tensor([[1.0, 0.0, 0.0]]).repeat(len(x), 1)

    x = torch.zeros(6, 1, 4, 4)
    y = torch.tensor([0, 0, 1, 1, 1, 0])
    ds = TensorDataset("t", x, y, x, y, 3, (0.0,), (1.0,))
    stats = evaluate(Fixed(), make_stream(ds, holdout_part(ds), 4, train=False))
    assert stats["per_class"] == [1.0, 0.0, None] and stats["top1"] == 0.5
