"""One-shot scores read the supernet of a finished search, a DARTS+ early-stopped one included."""

import json
from dataclasses import replace

import pytest

from pcdarts.errors import RunError
from pcdarts.experiments.oneshot import oneshot_scores
from pcdarts.files import save_checkpoint
from pcdarts.nas.nb201 import random_nb201
from pcdarts.runs.config import SearchConfig, build_search_network
from pcdarts.runs.inputs import load_data
from pcdarts.runs.search import load_finished_supernet
from tests.tiny import STUDY_SEARCH


@pytest.fixture
def run(tmp_path):
    """A search folder of a 3-epoch NAS-Bench-201 search whose checkpoint was written at epoch 2."""
    cfg = SearchConfig(**dict(STUDY_SEARCH, epochs=3), dataset="synthetic", cell="nasbench201", holdout_images=40,
                       threads=1)  # fmt: skip
    ds = load_data(cfg)
    net = build_search_network(cfg, num_classes=ds.num_classes, in_channels=ds.in_channels)
    save_checkpoint(tmp_path / "checkpoint.pt", {"kind": "search", "epoch": 2, "model": net.state_dict()})
    return tmp_path, cfg, ds


def _stop_early(run_dir, early_stop):
    result = {"format": 2, "early_stop": early_stop}
    (run_dir / "search_result.json").write_text(json.dumps(result))


def test_an_unfinished_search_is_refused_and_an_early_stopped_one_accepted(run):
    run_dir, cfg, ds = run
    with pytest.raises(RunError, match="not the end of a finished search"):
        load_finished_supernet(run_dir, cfg, ds)
    _stop_early(run_dir, None)  # a search_result.json without an early stop does not finish it either
    with pytest.raises(RunError, match="not the end of a finished search"):
        oneshot_scores(run_dir, cfg, [random_nb201(0)], images=20)
    _stop_early(run_dir, {"epoch": 2, "reason": "two parameter-free ops"})
    net, state = load_finished_supernet(run_dir, cfg, ds)
    assert state["epoch"] == 2 and net.ops
    scores = oneshot_scores(run_dir, cfg, [random_nb201(0), random_nb201(1)], images=20)
    assert len(scores["scores"]) == 2 and all(0 <= s <= 1 for s in scores["scores"])


def test_a_checkpoint_of_another_kind_or_shape_or_lacking_keys_is_refused(run):
    run_dir, cfg, ds = run
    full = replace(cfg, epochs=2)  # the checkpoint is at its last epoch
    net, _ = load_finished_supernet(run_dir, full, ds)
    with pytest.raises(RunError, match="lacks arch_optimizer"):
        load_finished_supernet(run_dir, full, ds, keys=("arch_optimizer",))
    save_checkpoint(run_dir / "checkpoint.pt", {"kind": "train", "epoch": 2, "model": net.state_dict()})
    with pytest.raises(RunError, match="not the end of a finished search"):
        load_finished_supernet(run_dir, full, ds)
    wider = replace(full, init_channels=8)
    save_checkpoint(run_dir / "checkpoint.pt", {"kind": "search", "epoch": 2, "model": net.state_dict()})
    with pytest.raises(RunError, match="do not fit the search's config.json"):
        load_finished_supernet(run_dir, wider, ds)
