"""Fashion-MNIST / MNIST from IDX files: reading, resizing, and one-line errors for broken files."""

import gzip
import struct

import pytest

from pcdarts.cli import main
from pcdarts.data import DataError, get_dataset, limit_train, stratified_split, train_part
from pcdarts.data.idx import _read_bytes, read_idx
from pcdarts.errors import PCDartsError
from tests.idx_data import write_idx


@pytest.mark.parametrize("gz", [True, False])
def test_reads_the_four_files_and_resizes(tmp_path, gz):
    write_idx(tmp_path, gz=gz)
    ds = get_dataset("fashion-mnist", data=str(tmp_path))
    assert ds.train_x.shape == (120, 1, 12, 12) and ds.test_x.shape == (40, 1, 12, 12)
    assert ds.num_classes == 10 and ds.class_names()[0] == "T-shirt/top" and ds.flip
    small = get_dataset("mnist", data=str(tmp_path), image_size=6)
    assert small.train_x.shape == (120, 1, 6, 6) and not small.flip
    assert small.train_x.dtype.is_floating_point is False


def test_train_subset_and_validation_split_are_fixed_and_per_class(tmp_path):
    write_idx(tmp_path)
    ds = get_dataset("fashion-mnist", data=str(tmp_path))
    a, b = limit_train(ds, 60), limit_train(ds, 60)
    assert len(a.train_y) == 60 and a.train_y.tolist() == b.train_y.tolist()
    assert sorted(a.train_y.bincount().tolist()) == [6] * 10
    rest, val = stratified_split(train_part(ds), 0.25)
    assert len(val[1]) == 30 and len(rest[1]) == 90 and sorted(val[1].bincount().tolist()) == [3] * 10
    assert a.test_x is ds.test_x  # the test split is never cut


def test_missing_files_name_the_package_and_data(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist.*--data"):
        get_dataset("fashion-mnist", data=str(tmp_path))


def _damage(path, how):
    data = gzip.decompress(path.read_bytes())
    if how == "magic":
        data = b"\x00\x00\x08\x04" + data[4:]
    elif how == "short":
        data = data[:-5]
    if how == "gzip":
        path.write_bytes(path.read_bytes()[:-40])
    else:
        path.write_bytes(gzip.compress(data))


@pytest.mark.parametrize("how,msg", [("magic", "magic number"), ("short", "truncated"), ("gzip", "not a readable IDX")])
def test_broken_files_are_one_line_errors_naming_the_file(tmp_path, capsys, how, msg):
    write_idx(tmp_path)
    _damage(tmp_path / "train-images-idx3-ubyte.gz", how)
    with pytest.raises(DataError, match=msg):
        get_dataset("fashion-mnist", data=str(tmp_path))
    assert main(["info", "--genotype", "DARTS_V2", "--dataset", "cifar10"]) == 0  # unrelated commands still work
    capsys.readouterr()
    rc = main(
        [
            "train",
            "--dataset",
            "fashion-mnist",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "train-images-idx3-ubyte.gz" in err


def test_an_idx_gzip_is_read_header_first_and_never_beyond_its_length(tmp_path):
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as f:
        f.write(struct.pack(">IIII", 0x803, 1000, 28, 28))
        zeros = b"\0" * (1 << 20)
        for _ in range(64):  # 64 MiB inflated from a small file
            f.write(zeros)
    assert bomb.stat().st_size < 1 << 20
    assert len(_read_bytes(bomb, 16)) == 16 + 1000 * 28 * 28 + 1
    with pytest.raises(PCDartsError, match="its header says"):
        read_idx(bomb, images=True)
    huge = tmp_path / "t10k-images-idx3-ubyte.gz"
    huge.write_bytes(gzip.compress(struct.pack(">IIII", 0x803, 10**9, 28, 28) + b"\0" * 4096))
    assert len(_read_bytes(huge, 16)) == 16  # the implausible header is refused before any inflating
    with pytest.raises(PCDartsError, match="not a plausible IDX file"):
        read_idx(huge, images=True)


def test_idx_labels_of_one_class_are_refused_as_folders_are(tmp_path):
    folder = write_idx(tmp_path / "idx")
    n = 120
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 0x801, n) + bytes(n)))
    with pytest.raises(DataError, match="one class: a classifier needs at least two"):
        get_dataset("fashion-mnist", data=str(folder))
