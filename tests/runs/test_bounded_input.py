"""Inputs that must not give a silent wrong result, a traceback or unbounded memory: images of other bit depths,
decompression bombs, FIFOs, deep or huge logs, symlink loops, CIFAR batches of the wrong kind."""

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from pcdarts.cli import main
from pcdarts.data import DataError
from pcdarts.data.images import open_image
from pcdarts.errors import PCDartsError, RunError
from pcdarts.files import MAX_LOG_BYTES, read_jsonl
from pcdarts.runs.rundir import check_out_path


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_16_bit_grey_images_are_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 255, 64 * 64).reshape(64, 64).round().astype(np.uint8)
    Image.fromarray(ramp, mode="L").save(tmp_path / "eight.png")
    Image.fromarray(ramp.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")  # the same picture, 16 bits
    assert Image.open(tmp_path / "sixteen.png").mode.startswith("I")
    eight = np.asarray(open_image(tmp_path / "eight.png", 1))
    sixteen = np.asarray(open_image(tmp_path / "sixteen.png", 1))
    assert np.abs(eight.astype(int) - sixteen.astype(int)).max() <= 1
    assert np.asarray(open_image(tmp_path / "sixteen.png", 3)).shape == (64, 64, 3)


def test_a_decompression_bomb_and_a_fifo_are_one_line_errors_naming_the_file(tmp_path, monkeypatch):
    Image.new("L", (300, 300)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 90,000 pixels: over twice the limit, as a bomb is
    with pytest.raises(DataError, match="big.png is too large to decode safely"):
        open_image(tmp_path / "big.png", 1)
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(DataError, match="pipe.png is not a regular file"):
        open_image(tmp_path / "pipe.png", 1)  # would block forever on open


def test_deeply_nested_and_oversized_log_lines_count_as_unreadable(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"epoch": 1}\n' + "[" * 200_000 + "\n" + '{"epoch": 2, "x": "' + "a" * (5 << 20) + '"}\n[1]\n')
    records, bad = read_jsonl(log, count_bad=True)
    assert records == [{"epoch": 1}] and bad == 3


def test_a_log_past_the_size_cap_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    import pcdarts.files

    log = tmp_path / "arch_history.jsonl"
    log.write_text('{"epoch": 1}\n' * 100)
    monkeypatch.setattr(pcdarts.files, "MAX_LOG_BYTES", 500)
    with pytest.raises(RunError, match="more than a pcdarts log holds"):
        read_jsonl(log)
    assert MAX_LOG_BYTES >= 64 << 20  # the real cap leaves room for a 10,000-epoch history


def test_a_symlink_loop_as_out_is_one_line(tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(RunError, match="cannot be resolved"):
        check_out_path(tmp_path / "a")
    assert main(["search", "--dataset", "synthetic", "--out", str(tmp_path / "a")]) == 2
    assert "cannot be resolved" in _one_line(capsys)


@pytest.mark.parametrize("key", ["genotype=DARTS_V2", "dataset=digits", "data=/tmp"])
def test_fidelity_refuses_training_settings_it_sets_itself(tmp_path, capsys, key):
    assert main(["fidelity", "--dataset", "synthetic", "--train-set", key, "--out", str(tmp_path / "f")]) == 2
    assert "is not a training setting of a calibration" in _one_line(capsys)
    assert not (tmp_path / "f").exists()


def _archive(tmp_path, batch_1):
    from tests.data.test_datasets import _cifar_archive

    archive = tmp_path / "cifar-10-python.tar.gz"
    _cifar_archive(archive)
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    name = next(n for n in members if n.endswith("data_batch_1"))
    batch = pickle.loads(members[name], encoding="bytes")
    batch_1(batch)
    members[name] = pickle.dumps(batch)
    with tarfile.open(archive, "w:gz") as tar:
        for n, data in members.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b.update({b"data": b[b"data"].astype(np.float32) / 255}), "data is float32, not uint8 pixels"),
        (lambda b: b.update({b"data": b[b"data"].astype(np.int16) - 300}), "values outside 0..255"),
        (lambda b: b.update({b"data": [[0] * 3072] * 6}), "not an array of uint8 pixels"),
        (lambda b: b.update({b"labels": {"a": 1}}), "labels are a dict"),
        (lambda b: b.update({b"labels": None}), "labels are a NoneType"),
        (lambda b: b.update({b"labels": [[0] * 1000] * 6}), "something other than class numbers"),
    ],
)
def test_cifar_batches_of_the_wrong_kind_are_refused_not_cast(tmp_path, damage, message):
    from pcdarts.data.cifar import load_cifar10

    _archive(tmp_path, damage)
    with pytest.raises(PCDartsError, match=message):
        load_cifar10(data=str(tmp_path))


def test_cifar_pixels_stored_as_wider_integers_in_range_still_load(tmp_path):
    from pcdarts.data.cifar import load_cifar10

    _archive(tmp_path, lambda b: b.update({b"data": b[b"data"].astype(np.int64)}))
    assert load_cifar10(data=str(tmp_path)).train_x.dtype.is_floating_point is False


def test_idx_labels_of_one_class_are_refused_as_folders_are(tmp_path):
    import gzip
    import struct

    from pcdarts.data import get_dataset
    from tests.idx_data import write_idx

    folder = write_idx(tmp_path / "idx")
    n = 120
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 0x801, n) + bytes(n)))
    with pytest.raises(DataError, match="one class: a classifier needs at least two"):
        get_dataset("fashion-mnist", data=str(folder))


def test_a_loss_that_diverges_before_any_checkpoint_says_so(tmp_path, capsys):
    args = ["train", "--genotype", "DARTS_V2", "--dataset", "synthetic", "--epochs", "2", "--layers", "3",
            "--init-channels", "4", "--image-size", "8", "--lr", "1e9", "--threads", "1", "--no-progress"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "t")]) == 1  # the run failed (exit 1), not the input (2)
    err = _one_line(capsys)
    assert "in the first epoch, before any checkpoint" in err and "last good checkpoint" not in err


def test_alpha_far_out_of_range_is_warned_about(tmp_path, caplog):
    import logging

    args = ["search", "--dataset", "synthetic", "--epochs", "2", "--warmup-epochs", "0", "--layers", "3",
            "--init-channels", "4", "--image-size", "8", "--arch-lr", "1e6", "--threads", "1",
            "--no-progress"]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="pcdarts.runs.search"):
        assert main([*args, "--out", str(tmp_path / "s")]) == 0
    assert caplog.text.count("their softmax is saturated") == 1


def test_a_log_of_too_many_lines_is_refused(tmp_path, monkeypatch):
    import pcdarts.files

    log = tmp_path / "metrics.jsonl"
    log.write_text("{}\n" * 50)
    monkeypatch.setattr(pcdarts.files, "MAX_LOG_RECORDS", 20)
    with pytest.raises(RunError, match="more than 20 lines"):
        read_jsonl(log)


def test_study_and_fidelity_sizes_are_bounded(tmp_path, capsys):
    assert main(["study", "--random", "100000000", "--searches", "0", "--out", str(tmp_path / "s"),
                 "--print-config"]) == 2  # fmt: skip
    assert "between 0 and 10,000" in _one_line(capsys)
    assert main(["fidelity", "--cells", "100000000", "--out", str(tmp_path / "f")]) == 2
    assert "between 3 and 10,000 cells" in _one_line(capsys)
    assert main(["study", "--train-set", "seed=3", "--out", str(tmp_path / "s2")]) == 2
    assert "set by the study itself" in _one_line(capsys)


def test_max_macs_refuses_a_budget_beyond_any_network_it_would_build(tmp_path, capsys):
    args = ["train", "--dataset", "synthetic", "--genotype", "DARTS_V2", "--image-size", "8", "--layers", "3",
            "--out", str(tmp_path / "t")]  # fmt: skip
    assert main([*args, "--max-macs", "1000G"]) == 2
    assert "more than 512 init channels" in _one_line(capsys)
    assert main([*args, "--max-macs", "5M", "--init-channels", "8"]) == 2
    assert "not both" in _one_line(capsys)
