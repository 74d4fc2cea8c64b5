"""The tiny-run settings the tests share: a 3-cell, 4-channel network on 8x8 images.

``TINY``: synthetic images, one thread; command-line tests start from it and add what they are about
(argparse takes a flag's last value, so a test may override one). ``QUARTER_*``: the same network on 360
train images at batch 128 (a quarter of digits' train split: 2 steps an epoch in a search, 3 in a training,
with a short last batch in each), with no dataset named: the caller gives ``--dataset``. Study and
calibration tests use the same sizes as config values (``SIZES``). ``train_state``: what a finished training
of that network (3 classes, 1 channel) saves, for tests of checkpoints written without a run.
"""

SHAPE = ["--layers", "3", "--init-channels", "4", "--image-size", "8", "--no-progress"]
TINY = ["--dataset", "synthetic", *SHAPE, "--threads", "1"]
TINY_SEARCH = [*TINY, "--epochs", "2", "--warmup-epochs", "1"]
TINY_TRAIN = [*TINY, "--epochs", "1"]

QUARTER = ["--train-images", "360", "--batch-size", "128"]
QUARTER_SEARCH = [*SHAPE, *QUARTER, "--epochs", "2", "--warmup-epochs", "1"]
QUARTER_TRAIN = [*SHAPE, *QUARTER, "--epochs", "2"]

SIZES = dict(image_size=8, init_channels=4, layers=3, batch_size=32, lr=0.05)
STUDY_SEARCH = dict(SIZES, epochs=2, warmup_epochs=1)
STUDY_TRAIN = dict(SIZES, epochs=2, cutout=0, drop_path=0.0, auxiliary=False)


def train_state(genotype="DARTS_V2", weights_of="DARTS_V2"):
    """A training checkpoint's contents: the weights of ``weights_of``'s network, saved as ``genotype``'s."""
    from pcdarts.nas.genotype import GENOTYPES
    from pcdarts.nas.network import build_network

    net = build_network(GENOTYPES[weights_of], num_classes=3, in_channels=1, init_channels=4, layers=3,
                        auxiliary=False)  # fmt: skip
    return {
        "kind": "train",
        "model": net.state_dict(),
        "genotype": GENOTYPES[genotype].to_dict(),
        "model_args": dict(num_classes=3, in_channels=1, init_channels=4, layers=3, auxiliary=False, stem="cifar"),
        "classes": ["a", "b", "c"],
        "mean": [0.5],
        "std": [0.25],
        "input_size": [8, 8],
        "dataset": "synthetic",
    }
