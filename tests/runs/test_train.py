"""runs.train: what a training records (its data, accuracy per class), the warnings it gives about its result, the
epoch it ships without validation, resuming only its own genotype, and channels-last training."""

import json

import pytest
import torch

from pcdarts.cli import main
from pcdarts.nas.genotype import random_genotype
from pcdarts.nas.network import build_network
from pcdarts.runs.config import TrainConfig, resolve_config
from pcdarts.runs.engine import train_step
from pcdarts.runs.train import chance_warnings, selection_warnings
from tests.tiny import TINY_CONFIG


def test_warnings_for_a_model_at_chance_and_a_validation_split_too_small():
    at_chance = {"num_classes": 3, "test_images": 24, "test_accuracy": 0.3333}
    assert "at chance level" in chance_warnings(at_chance)[0]
    assert chance_warnings({**at_chance, "test_accuracy": 0.9}) == []
    small = {"num_classes": 3, "val_images": 24, "selected_by": "val"}
    assert "24 images for 3 classes" in selection_warnings(small)[0]
    assert (
        selection_warnings({**small, "val_images": 300}) == []
        and selection_warnings({**small, "selected_by": "x"}) == []
    )


def test_a_training_records_its_data_and_per_class_accuracy_and_the_report_shows_them(digits_runs, tmp_path):
    from pcdarts.viz.report import build_report

    result = json.loads((digits_runs / "train" / "result.json").read_text())
    assert result["classes"] == [str(i) for i in range(10)] and result["input"] == [1, 8, 8]
    assert result["genotype_from"] == str(digits_runs / "search")
    per_class = result["test_per_class"]
    assert len(per_class) == 10
    assert all(a is None or 0 <= a <= 1 for a in per_class) and any(a is not None for a in per_class)
    page = build_report(digits_runs / "train", tmp_path / "r.html").read_text()
    assert "Test accuracy per class" in page and "dataset" in page and "1 x 8 x 8" in page


@pytest.mark.parametrize("aux", [False, True])
def test_channels_last_training_equals_the_contiguous_one_in_float64(aux):
    """The layout changes speed only: one training step from one seed gives the same logits, weights and stats."""
    genotype = random_genotype(3)
    results = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        torch.manual_seed(0)
        net = build_network(genotype, num_classes=10, in_channels=1, init_channels=8, layers=5, auxiliary=aux)
        net = net.double().set_memory_format(fmt)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4, foreach=True)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(6, 1, 16, 16, generator=g, dtype=torch.float64)
        y = torch.randint(0, 10, (6,), generator=g)
        train_step(net, opt, list(net.parameters()), x, y, grad_clip=5.0, auxiliary_weight=0.4 if aux else 0.0)
        net.eval()
        results.append((net(x), net.state_dict()))
    (a, sa), (b, sb) = results
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-10, atol=1e-10)
    assert sb["stem0.0.weight"].is_contiguous(memory_format=torch.channels_last)


def test_the_final_network_trains_channels_last_on_cpu(digits_runs):
    from pcdarts.files import load_checkpoint as load

    weights = load(digits_runs / "train" / "best.pt")["model"]
    assert weights["stem0.0.weight"].is_contiguous(memory_format=torch.channels_last)


def test_training_without_validation_ships_the_last_epoch_and_reads_test_once(tmp_path, monkeypatch):
    import pcdarts.runs.train as train_mod

    calls = []
    real = train_mod.evaluate
    monkeypatch.setattr(train_mod, "evaluate", lambda m, s: calls.append(s.n) or real(m, s))
    cfg = resolve_config(TrainConfig, "synthetic", dict(TINY_CONFIG, epochs=2, val_fraction=0.0, genotype="DARTS_V2"))
    res = train_mod.run_train(cfg, tmp_path / "t", progress=False)
    assert (
        res["selected_by"] == "last_epoch" and res["shipped"] == "last.pt" and not (tmp_path / "t" / "best.pt").exists()
    )
    assert calls == [128]  # the 128 synthetic test images, once
    cfg = resolve_config(TrainConfig, "synthetic", dict(TINY_CONFIG, epochs=2, val_fraction=0.25, genotype="DARTS_V2"))
    calls.clear()
    res = train_mod.run_train(cfg, tmp_path / "v", progress=False)
    assert res["selected_by"] == "val" and res["val_images"] == 128 and res["train_images"] == 384
    assert calls == [128, 128, 128]  # validation after each epoch, the test split once at the end
    assert torch.load(tmp_path / "v" / "best.pt", weights_only=True)["test"]["n"] == 128


def test_a_training_resumes_only_its_own_genotype(tmp_path, capsys, stop_after):
    from pcdarts.runs.train import run_train

    cfg = TrainConfig.for_dataset("synthetic", **TINY_CONFIG, epochs=2, genotype="DARTS_V2")
    with stop_after(1):
        stopped = run_train(cfg, tmp_path / "t", progress=False)
    assert stopped["stopped"]
    args = ["train", "--dataset", "synthetic", "--out", str(tmp_path / "t"), "--resume", "--no-progress"]
    assert main([*args, "--genotype", "PC_DARTS_cifar"]) == 2
    assert "another genotype" in capsys.readouterr().err
    assert main(args) == 0  # without --genotype the run's own cell is used
    assert json.loads((tmp_path / "t" / "result.json").read_text())["epochs"] == 2
