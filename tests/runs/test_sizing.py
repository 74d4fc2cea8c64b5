"""runs.sizing: the batch chosen for a run, --max-macs widths and a folder search's defaults."""

import pytest

from pcdarts.cli import main
from pcdarts.errors import ConfigError
from pcdarts.runs.config import SearchConfig
from pcdarts.runs.sizing import auto_batch
from tests.conftest import one_line


def test_the_batch_sizing_refuses_what_the_cli_refuses(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="under torchrun"):
        auto_batch(SearchConfig(dataset="digits"))


def test_max_macs_refuses_a_budget_beyond_any_network_it_would_build(tmp_path, capsys):
    # not tests.tiny's TINY: without --init-channels, as --max-macs chooses them
    args = ["train", "--dataset", "synthetic", "--genotype", "DARTS_V2", "--image-size", "8", "--layers", "3",
            "--out", str(tmp_path / "t")]  # fmt: skip
    assert main([*args, "--max-macs", "1000G"]) == 2
    assert "more than 512 init channels" in one_line(capsys)
    assert main([*args, "--max-macs", "5M", "--init-channels", "8"]) == 2
    assert "not both" in one_line(capsys)


@pytest.mark.parametrize("n_images, batch", [(600, 8), (20_000, 32)])
def test_folder_search_defaults_pass_their_own_checks(n_images, batch):
    from pcdarts.runs.search import MIN_ARCH_STEPS, MIN_OP_CHANNELS
    from pcdarts.runs.sizing import fit_folder_search

    cfg = SearchConfig.for_dataset("folder")
    fitted, line = fit_folder_search(cfg, n_images, set())
    steps = -(-int(n_images * fitted.train_portion) // fitted.batch_size)
    assert fitted.init_channels // fitted.k >= MIN_OP_CHANNELS and fitted.batch_size == batch
    assert steps * (fitted.epochs - fitted.warmup_epochs) >= MIN_ARCH_STEPS
    assert f"folder search for {n_images:,} images" in line
    kept, _ = fit_folder_search(cfg, n_images, {"init_channels", "batch_size", "epochs"})  # the user's values stay
    assert (kept.init_channels, kept.batch_size, kept.epochs) == (cfg.init_channels, cfg.batch_size, cfg.epochs)
