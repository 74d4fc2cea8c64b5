"""Against the official code: ImageNet stem, schedules, aux head, arch clip; runs that report honestly."""

import json

import pytest
import torch

from pcdarts.cli import main
from pcdarts.nas.architect import Architect
from pcdarts.nas.network import AuxiliaryHead
from pcdarts.nas.supernet import SearchNetwork
from pcdarts.runs.config import SearchConfig, TrainConfig, resolve_config
from pcdarts.runs.engine import linear_warmup_decay_lr
from pcdarts.runs.presets import preset_values
from pcdarts.runs.search import run_search, search_lr
from tests.tiny import TINY_SEARCH

TINY = TINY_SEARCH[2:]  # without --dataset: the tests name theirs


def test_imagenet_supernet_stem_uses_the_stem_multiplier():
    net = SearchNetwork(num_classes=10, init_channels=16, layers=8, k=2, stem="imagenet")
    convs = [m for m in [*net.stem0, *net.stem1] if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [(3, 24, 2), (24, 48, 2), (48, 48, 2)]
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_official_imagenet_training_schedule():
    lr = [linear_warmup_decay_lr(e, 250, 0.5, 5) for e in range(250)]
    assert lr[:5] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert lr[5] == pytest.approx(0.5 * 240 / 245) and lr[244] == pytest.approx(0.5 * 1 / 245)
    assert lr[245] == pytest.approx(0.5 * 5 / (245 * 5)) and lr[249] == pytest.approx(0.5 / (245 * 5))


def test_search_lr_warm_up_and_the_official_one_epoch_lag():
    cfg = SearchConfig(epochs=50, warmup_epochs=35, lr=0.5, lr_warmup_epochs=5, lr_lag=True)
    assert [search_lr(cfg, e) for e in range(5)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert search_lr(cfg, 49) == pytest.approx(0.0)  # the official last search epoch runs at lr 0
    plain = SearchConfig(epochs=50, warmup_epochs=15, lr=0.1)
    assert search_lr(plain, 0) == pytest.approx(0.1) and search_lr(plain, 49) > 0


def test_paper_presets_follow_the_official_code():
    inet = preset_values("paper", "search", "imagenet")
    assert inet["arch_grad_clip"] == 5.0 and inet["lr_warmup_epochs"] == 5 and inet["lr_lag"]
    assert preset_values("paper", "search", "cifar10")["lr_lag"]
    assert preset_values("paper", "train", "cifar10")["val_fraction"] == 0.0  # ships the last epoch, as the paper


def test_imagenet_aux_head_has_no_batchnorm_after_the_768_conv():
    assert not any(isinstance(m, torch.nn.BatchNorm2d) and m.num_features == 768
                   for m in AuxiliaryHead(64, 10, imagenet=True).modules())  # fmt: skip
    assert any(isinstance(m, torch.nn.BatchNorm2d) and m.num_features == 768
               for m in AuxiliaryHead(64, 10, imagenet=False).modules())  # fmt: skip


def test_arch_gradient_clip():
    net = SearchNetwork(num_classes=4, in_channels=1, init_channels=4, layers=3, k=2)
    arch = Architect(net, lr=0.1, grad_clip=1e-6)
    captured = []
    arch.optimizer.step = lambda: captured.append(torch.cat([p.grad.flatten() for p in arch.params]).norm())
    arch.step(torch.randn(8, 1, 8, 8), torch.randint(0, 4, (8,)))
    assert float(captured[0]) <= 1e-6 * 1.01


def test_no_edge_norm_search_runs_end_to_end(tmp_path):
    out = tmp_path / "s"
    assert main(["search", "--dataset", "synthetic", "--out", str(out), "--no-edge-norm", *TINY]) == 0
    arch = json.loads((out / "arch.json").read_text())
    assert set(arch) == {"alphas_normal", "alphas_reduce", "space", "ops"}  # no betas


def test_training_without_validation_ships_the_last_epoch_and_reads_test_once(tmp_path, monkeypatch):
    import pcdarts.runs.train as train_mod

    calls = []
    real = train_mod.evaluate
    monkeypatch.setattr(train_mod, "evaluate", lambda m, s: calls.append(s.n) or real(m, s))
    cfg = resolve_config(TrainConfig, "synthetic", dict(epochs=2, layers=3, init_channels=4, image_size=8,
                                                        val_fraction=0.0, genotype="DARTS_V2", threads=1))  # fmt: skip
    res = train_mod.run_train(cfg, tmp_path / "t", progress=False)
    assert (
        res["selected_by"] == "last_epoch" and res["shipped"] == "last.pt" and not (tmp_path / "t" / "best.pt").exists()
    )
    assert calls == [128]  # the 128 synthetic test images, once
    cfg = resolve_config(TrainConfig, "synthetic", dict(epochs=2, layers=3, init_channels=4, image_size=8,
                                                        val_fraction=0.25, genotype="DARTS_V2", threads=1))  # fmt: skip
    calls.clear()
    res = train_mod.run_train(cfg, tmp_path / "v", progress=False)
    assert res["selected_by"] == "val" and res["val_images"] == 128 and res["train_images"] == 384
    assert calls == [128, 128, 128]  # validation after each epoch, the test split once at the end
    assert torch.load(tmp_path / "v" / "best.pt", weights_only=True)["test"]["n"] == 128


def test_a_resumed_search_reports_the_time_of_both_parts(tmp_path, stop_after):
    cfg = resolve_config(SearchConfig, "synthetic", dict(epochs=2, warmup_epochs=1, layers=3, init_channels=4,
                                                         image_size=8, threads=1))  # fmt: skip
    with stop_after(1):
        first = run_search(cfg, tmp_path / "s", progress=False)
    assert first["stopped"]
    second = run_search(cfg, tmp_path / "s", resume=True, progress=False)
    assert second["seconds"] > first["seconds"]
    assert json.loads((tmp_path / "s" / "search_result.json").read_text())["seconds"] == pytest.approx(
        second["seconds"]
    )


def test_resuming_with_another_process_count_is_a_one_line_error(tmp_path, capsys):
    from pcdarts.files import load_checkpoint, save_checkpoint

    out = tmp_path / "s"
    assert main(["search", "--dataset", "synthetic", "--out", str(out), *TINY, "--epochs", "3"]) == 0
    state = load_checkpoint(out / "checkpoint.pt")
    state["train_stream"] = [state["train_stream"]] * 2  # as two torchrun processes would have saved it
    save_checkpoint(out / "checkpoint.pt", state)
    (out / "genotype.json").unlink()
    capsys.readouterr()
    assert main(["search", "--dataset", "synthetic", "--out", str(out), *TINY, "--epochs", "3", "--resume"]) == 2
    assert "written by 2 process(es) but 1 are resuming" in capsys.readouterr().err


def test_imagenet_paper_search_without_a_subset_is_refused(capsys):
    assert main(["search", "--preset", "paper", "--dataset", "imagenet", "--data", "/nowhere", "--out", "/tmp/x"]) == 2
    assert "pcdarts subsample" in capsys.readouterr().err


def test_a_training_resumes_only_its_own_genotype(tmp_path, capsys, stop_after):
    from pcdarts.runs.train import run_train

    cfg = TrainConfig.for_dataset("synthetic", epochs=2, layers=3, init_channels=4, image_size=8, threads=1,
                                  genotype="DARTS_V2")  # fmt: skip
    with stop_after(1):
        stopped = run_train(cfg, tmp_path / "t", progress=False)
    assert stopped["stopped"]
    args = ["train", "--dataset", "synthetic", "--out", str(tmp_path / "t"), "--resume", "--no-progress"]
    assert main([*args, "--genotype", "PC_DARTS_cifar"]) == 2
    assert "another genotype" in capsys.readouterr().err
    assert main(args) == 0  # without --genotype the run's own cell is used
    assert json.loads((tmp_path / "t" / "result.json").read_text())["epochs"] == 2


def test_derivation_refuses_arch_states_that_do_not_fit():
    from pcdarts.nas.derive import derive_from_arch
    from pcdarts.nas.genotype import GenotypeError

    good = torch.zeros(14, 8).tolist()
    cases = [
        {"alphas_normal": 1.0, "alphas_reduce": good},
        {"alphas_normal": good, "alphas_reduce": [[0.0] * 7] * 14},
        {"alphas_normal": good, "alphas_reduce": torch.zeros(20, 8).tolist()},
        {"alphas_normal": [[float("nan")] * 8] * 14, "alphas_reduce": good},
    ]
    for bad in cases:
        with pytest.raises(GenotypeError):
            derive_from_arch(bad)
