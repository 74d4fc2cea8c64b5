"""The tiny-run settings the tests share: a 3-cell, 4-channel network on 8x8 images.

``TINY``: synthetic images, one thread; command-line tests start from it and add what they are about
(argparse takes a flag's last value, so a test may override one). ``QUARTER_*``: the same network on 360
train images at batch 128 (a quarter of digits' train split: 2 steps an epoch in a search, 3 in a training,
with a short last batch in each), with no dataset named: the caller gives ``--dataset``. Study and
calibration tests use the same sizes as config values (``SIZES``; ``CALIBRATION_TRAIN`` without epochs, which a
calibration takes from its budgets; ``study_args``: the arms study of ``finished_study``). ``*_CONFIG``: the tiny
and quarter settings as config keyword arguments. ``TINY_DIGITS``: the network on 600 of
digits' train images, for runs in another process that must last long enough to be cut (300 images a part in a
search: 3 steps an epoch at batch 128); those processes get ``ENV``. ``TINY_BENCH``: a tiny
supernet and network as ``pcdarts bench`` flags. ``train_state``: what a finished training
of that network (3 classes, 1 channel unless told) saves, for tests of checkpoints written without a run.
"""

import os
from pathlib import Path

SHAPE = ["--layers", "3", "--init-channels", "4", "--image-size", "8", "--no-progress"]
TINY = ["--dataset", "synthetic", *SHAPE, "--threads", "1"]
TINY_SEARCH = [*TINY, "--epochs", "2", "--warmup-epochs", "1"]
TINY_TRAIN = [*TINY, "--epochs", "1"]
TINY_DIGITS = ["--dataset", "digits", "--train-images", "600", *SHAPE, "--threads", "1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}

TINY_BENCH = ["--channels", "8", "--layers", "3", "--batch", "4", "--size", "8", "--repeats", "1",
              "--train-channels", "8", "--train-layers", "3", "--threads", "1"]  # fmt: skip

QUARTER = ["--train-images", "360", "--batch-size", "128"]
QUARTER_SEARCH = [*SHAPE, *QUARTER, "--epochs", "2", "--warmup-epochs", "1"]
QUARTER_TRAIN = [*SHAPE, *QUARTER, "--epochs", "2"]

SIZES = dict(image_size=8, init_channels=4, layers=3, batch_size=32, lr=0.05)
STUDY_SEARCH = dict(SIZES, epochs=2, warmup_epochs=1)
STUDY_TRAIN = dict(SIZES, epochs=2, cutout=0, drop_path=0.0, auxiliary=False)
CALIBRATION_TRAIN = {k: v for k, v in STUDY_TRAIN.items() if k != "epochs"}  # a calibration's epochs are its budgets

# The same settings as config values (``resolve_config``/``SearchConfig`` keyword arguments), dataset apart.
TINY_CONFIG = dict(layers=3, init_channels=4, image_size=8, threads=1)  # TINY: synthetic, one thread
TINY_SEARCH_CONFIG = dict(TINY_CONFIG, epochs=2, warmup_epochs=1)  # TINY_SEARCH
QUARTER_CONFIG = dict(layers=3, init_channels=4, image_size=8, batch_size=128, train_images=360)  # SHAPE + QUARTER
QUARTER_SEARCH_CONFIG = dict(QUARTER_CONFIG, epochs=2, warmup_epochs=1)  # QUARTER_SEARCH
QUARTER_TRAIN_CONFIG = dict(QUARTER_CONFIG, epochs=2)  # QUARTER_TRAIN


def study_args(data, out):
    """``pcdarts study`` on the IDX files in ``data``: three searched arms (one search each) and two random cells."""
    import json

    args = ["study", "--dataset", "fashion-mnist", "--data", str(data), "--out", str(out), "--searches", "1",
            "--random", "2", "--arm", "pcdarts", "--arm", "cap1:max_param_free=1", "--arm", "bd:beta_decay=25",
            "--threads", "1", "--no-progress"]  # fmt: skip
    for k, v in STUDY_SEARCH.items():
        args += ["--search-set", f"{k}={v}"]
    for k, v in STUDY_TRAIN.items():
        args += ["--train-set", f"{k}={json.dumps(v)}"]
    return args


def train_state(genotype="DARTS_V2", weights_of="DARTS_V2", in_channels=1, **fields):
    """A training checkpoint's contents: the weights of ``weights_of``'s network, saved as ``genotype``'s, for
    ``in_channels``-channel images (a mean and a std for each); ``fields`` replace the other entries."""
    from pcdarts.nas.genotype import GENOTYPES
    from pcdarts.nas.network import build_network

    net = build_network(GENOTYPES[weights_of], num_classes=3, in_channels=in_channels, init_channels=4, layers=3,
                        auxiliary=False)  # fmt: skip
    model_args = dict(num_classes=3, in_channels=in_channels, init_channels=4, layers=3, auxiliary=False, stem="cifar")
    return {
        "kind": "train",
        "model": net.state_dict(),
        "genotype": GENOTYPES[genotype].to_dict(),
        "model_args": model_args,
        "classes": ["a", "b", "c"],
        "mean": [0.5] * in_channels,
        "std": [0.25] * in_channels,
        "input_size": [8, 8],
        "dataset": "synthetic",
        **fields,
    }


ANALYSIS_CELL = {"cell": "nasbench201", "params": 100_000, "param_free_normal": 2, "none_edges": 1, "train_seed": 0,
          "train_seconds": 150.0, "search_seconds": 0.0}  # fmt: skip


def analysis_study(tmp_path, oneshot_scores=None):
    """A made-up NAS-Bench-201 study whose analysis is known by hand (10 random cells, 2 retrained, 2 arms of 2
    searched cells); with ``oneshot_scores``, a one-shot ranking of the random cells in ``tmp_path``."""
    import json

    from pcdarts.nas.nb201 import random_nb201

    cells = []
    for s in range(10):  # random cell s: test accuracy 0.80 + s/100, hold-out the same order
        cells.append({"arm": "random", "kind": "random", "seed": s, "genotype": random_nb201(s).to_dict(),
                      "test_accuracy": round(0.80 + s / 100, 4), "holdout_accuracy": round(0.70 + s / 100, 4),
                      "train_cpu_seconds": 100.0, **ANALYSIS_CELL})  # fmt: skip
    for s, diff in enumerate([0.01, -0.03]):  # two retrained cells
        cells.append({"arm": "random-retrain", "kind": "retrain", "seed": s, "test_accuracy": 0.80 + s / 100 + diff,
                      "holdout_accuracy": 0.0, "train_cpu_seconds": 100.0, "genotype": random_nb201(s).to_dict(),
                      **ANALYSIS_CELL, "train_seed": 1})  # fmt: skip
    for arm, accs in (("pcdarts", [0.895, 0.84]), ("darts", [0.80, 0.805])):
        for s, a in enumerate(accs):
            cells.append({"arm": arm, "kind": "searched", "seed": s, "test_accuracy": a, "holdout_accuracy": a,
                          "search_cpu_seconds": 240.0, "train_cpu_seconds": 110.0,
                          "genotype": random_nb201(100 + s).to_dict(), **ANALYSIS_CELL})  # fmt: skip
    for i, c in enumerate(cells):
        c["train_run"], c["train_cpu_seconds"] = f"train/{i}", c["train_cpu_seconds"]
    if oneshot_scores is not None:
        texts = [random_nb201(s).to_text() for s in range(10)]
        (tmp_path / "oneshot.json").write_text(json.dumps({"cells": texts, "scores": oneshot_scores}))
        cells[-4]["oneshot_run"] = "oneshot.json"
    arms = [{"name": "pcdarts", "overrides": {"k": 4, "edge_norm": True}},
            {"name": "darts", "overrides": {"k": 1, "edge_norm": False}}]  # fmt: skip
    return {"config": {"arms": arms}, "cells": cells, "primary": "pcdarts"}
