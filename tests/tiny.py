"""The tiny-run settings the tests share: a 3-cell, 4-channel network on 8x8 images.

``TINY``: synthetic images, one thread; command-line tests start from it and add what they are about
(argparse takes a flag's last value, so a test may override one). ``QUARTER_*``: the same network on 360
train images at batch 128 (a quarter of digits' train split: 2 steps an epoch in a search, 3 in a training,
with a short last batch in each), with no dataset named: the caller gives ``--dataset``. Study and
calibration tests use the same sizes as config values (``SIZES``). ``TINY_DIGITS``: the network on 600 of
digits' train images, for runs in another process that must last long enough to be cut (300 images a part in a
search: 3 steps an epoch at batch 128); those processes get ``ENV``. ``train_state``: what a finished training
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

QUARTER = ["--train-images", "360", "--batch-size", "128"]
QUARTER_SEARCH = [*SHAPE, *QUARTER, "--epochs", "2", "--warmup-epochs", "1"]
QUARTER_TRAIN = [*SHAPE, *QUARTER, "--epochs", "2"]

SIZES = dict(image_size=8, init_channels=4, layers=3, batch_size=32, lr=0.05)
STUDY_SEARCH = dict(SIZES, epochs=2, warmup_epochs=1)
STUDY_TRAIN = dict(SIZES, epochs=2, cutout=0, drop_path=0.0, auxiliary=False)


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
