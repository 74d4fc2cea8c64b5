"""runs.inputs: a resume checks that the data is the data the run began with, and says what changed."""

import pytest

from pcdarts.cli import main
from pcdarts.errors import RunError
from tests.conftest import one_line
from tests.tiny import TINY_TRAIN as TINY


def test_a_resume_on_changed_image_folders_is_refused_with_what_changed(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    data = tmp_path / "images"
    rng = np.random.default_rng(0)

    def add(cls: str, n: int, start: int = 0) -> None:
        (data / cls).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + n):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(data / cls / f"{i}.png")

    add("cat", 8)
    add("dog", 8)
    out = tmp_path / "run"
    args = ["train", *TINY, "--genotype", "DARTS_V2", "--dataset", "folder", "--data", str(data), "--batch-size", "4",
            "--workers", "0", "--out", str(out)]  # fmt: skip
    assert main([*args, "--epochs", "1"]) == 0
    capsys.readouterr()
    add("dog", 10, start=8)
    assert main([*args, "--epochs", "2", "--resume", "--extend"]) == 2
    err = one_line(capsys)
    assert "the data changed since" in err and "images" in err


def test_the_same_counts_of_other_files_are_other_data(tmp_path):
    from pcdarts.data import FolderDataset
    from pcdarts.runs.inputs import check_data, data_fingerprint

    a = FolderDataset("folder", [("x/1.png", 0), ("y/1.png", 1)], [("x/2.png", 0)], ["x", "y"])
    b = FolderDataset("folder", [("x/1.png", 0), ("y/9.png", 1)], [("x/2.png", 0)], ["x", "y"])
    assert data_fingerprint(a)["train"] == data_fingerprint(b)["train"]
    check_data(a, {"data": data_fingerprint(a)}, "run")
    with pytest.raises(RunError, match="other files"):
        check_data(b, {"data": data_fingerprint(a)}, "run")
    check_data(b, {}, "run")  # a checkpoint from before the record: taken as it is
