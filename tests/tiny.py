"""The one tiny-run setting the tests share: synthetic images at 8x8, a 3-cell, 4-channel network, one thread.

Command-line tests start from ``TINY`` and add what they are about (argparse takes a flag's last value, so a
test may override one); study and calibration tests use the same sizes as config values.
"""

TINY = ["--dataset", "synthetic", "--layers", "3", "--init-channels", "4", "--image-size", "8", "--threads", "1",
        "--no-progress"]  # fmt: skip
TINY_SEARCH = [*TINY, "--epochs", "2", "--warmup-epochs", "1"]
TINY_TRAIN = [*TINY, "--epochs", "1"]

SIZES = dict(image_size=8, init_channels=4, layers=3, batch_size=32, lr=0.05)
STUDY_SEARCH = dict(SIZES, epochs=2, warmup_epochs=1)
STUDY_TRAIN = dict(SIZES, epochs=2, cutout=0, drop_path=0.0, auxiliary=False)
