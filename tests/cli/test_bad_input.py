"""Impossible settings, hostile genotype text and absurd sizes: one line on stderr, exit 2, nothing built."""

import fcntl
import os
import time

import pytest

from pcdarts.cli import main
from pcdarts.nas.genotype import GenotypeError, parse_genotype_text
from tests.tiny import TINY_SEARCH

G = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], reduce=[('max_pool_3x3', 0), ('skip_connect', 1)]"

CASES = {
    "info-num-classes-0": (["info", "--genotype", "DARTS_V2", "--num-classes", "0"], "num classes must be between"),
    "info-init-channels-0": (["info", "--genotype", "DARTS_V2", "--init-channels", "0"], "init channels must be"),
    "info-layers-huge": (["info", "--genotype", "DARTS_V2", "--layers", "100000"], "layers must be between"),
    "plan-batch-0": (["plan", "--batch-size", "0"], "batch size must be >= 1 and <="),
    "plan-batch-negative": (["plan", "--batch-size", "-1"], "batch size must be >= 1 and <="),
    "plan-batch-huge": (["plan", "--batch-size", "100000000"], "batch size must be >= 1 and <="),
    "plan-k-0": (["plan", "--ks", "0"], "every K must be >= 1"),
    "plan-size-0": (["plan", "--size", "0"], "size must be between"),
    "threads-negative": (["search", "--threads", "-1"], "threads must be between 0"),
    "threads-huge": (["search", "--threads", "100000"], "threads must be between 0"),
    "epochs-huge": (["search", "--epochs", "100000000000000000000"], "epochs must be between 1 and 10,000"),
    "train-epochs-huge": (["train", "--epochs", "20000"], "epochs must be between 1 and 10,000"),
    "cap-reduce-out-of-range": (["search", "--max-param-free-reduce", "9"], "max param-free reduce ops"),
    "memory-format-unknown": (["train", "--memory-format", "nhwc"], "memory format must be one of"),
    "device-mps": (["search", "--device", "mps"], "device must be auto, cpu, cuda"),
    "image-size-huge": (["search", "--image-size", "100000"], "image size must be 0"),
    "momentum-5": (["search", "--momentum", "5"], "momentum must be in [0, 1)"),
    "lr-min-above-lr": (["search", "--lr", "0.1", "--lr-min", "0.5"], "lr min must be between 0 and lr"),
    "cutout-negative": (["train", "--cutout", "-3"], "cutout must be between 0 (off) and"),
    "crop-padding-negative": (["train", "--crop-padding", "-4"], "crop padding must be between 0 and"),
    "crop-padding-huge": (["train", "--crop-padding", "3000"], "crop padding must be between 0 and 256"),
    "seed-negative": (["search", "--seed", "-1"], "seed must be between 0 and 4,294,967,295"),
    "seed-huge": (["train", "--seed", str(2**70)], "seed must be between 0 and"),
    "workers-negative": (["train", "--workers", "-2"], "workers must be >= 0"),
    "aux-weight-negative": (["train", "--auxiliary-weight", "-1"], "auxiliary weight must be >= 0"),
    "lr-nan": (["search", "--lr", "nan"], "lr must be a finite number"),
    "lr-inf": (["train", "--lr", "inf"], "lr must be a finite number"),
    "val-fraction-1": (["train", "--val-fraction", "1"], "val fraction must be in [0, 1)"),
    "cap-out-of-range": (["search", "--max-param-free", "9"], "max param-free ops"),
    "beta-decay-negative": (["search", "--beta-decay", "-1"], "beta decay weight"),
    "genotype-list-of-int": (["info", "--genotype", G + ", normal_concat=list(5))"], "takes a list or tuple"),
    "genotype-tuple-of-str": (["info", "--genotype", G + ", normal_concat=tuple('2345'))"], "takes a list or tuple"),
    "genotype-huge-range": (["info", "--genotype", G + ", normal_concat=range(10**12))"], "literals"),
    "genotype-big-range": (["info", "--genotype", G + ", normal_concat=range(50000000))"], "more than a cell can have"),
    "genotype-attribute-chain": (["info", "--genotype", "Genotype(normal=a" + ".b" * 20000 + ")"], "chains too deeply"),
    "genotype-long-sum": (["info", "--genotype", "Genotype(" + "+".join(["1"] * 30000) + ")"], "chains too deeply"),
    "genotype-20-digit-range": (
        ["info", "--genotype", G + ", normal_concat=range(0, 12345678901234567890))"],
        "too deep or too large",
    ),  # fmt: skip
    "genotype-repeated-keyword": (["info", "--genotype", G + ", normal=[])"], "given twice"),
    "genotype-duplicate-concat": (["info", "--genotype", G + ", normal_concat=[2, 2])"], "repeats a node"),
    "genotype-concat-of-inputs": (
        ["info", "--genotype", G + ", normal_concat=[0, 1])"],
        "must include an intermediate",
    ),
    "genotype-too-many-pairs": (
        ["info", "--genotype", "Genotype(normal=" + repr([("skip_connect", 0)] * 200) + ", reduce=[])"],
        "more than the 32 supported",
    ),
}


@pytest.mark.parametrize("argv,message", CASES.values(), ids=CASES.keys())
def test_one_line_error(argv, message, tmp_path, capsys):
    if argv[0] in ("search", "train"):
        argv = [*argv, "--out", str(tmp_path / "run"), "--no-progress"]
    t0 = time.time()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert time.time() - t0 < 20  # refused before anything big is built
    assert not (tmp_path / "run").exists()  # a refused start leaves no folder behind


def test_range_is_measured_before_it_is_built():
    t0 = time.time()
    with pytest.raises(GenotypeError):
        parse_genotype_text(G + ", normal_concat=range(0, 10**15, 1))")
    assert time.time() - t0 < 1


def test_non_utf8_genotype_file_names_the_file(tmp_path, capsys):
    bad = tmp_path / "cell.json"
    bad.write_bytes(b"\xff\xfe{\x00")
    assert main(["info", "--genotype", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not UTF-8" in err


def test_a_run_folder_in_use_is_refused_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    held = os.open(out / ".lock", os.O_CREAT | os.O_RDWR)  # another holder of the OS lock (a second open file)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(held, str(os.getppid()).encode())
    args = ["search", *TINY_SEARCH, "--out", str(out)]
    assert main(args) == 2
    assert f"in use by process {os.getppid()}" in capsys.readouterr().err
    os.close(held)  # as a killed process's lock: the kernel releases it, the pid stays in the file
    assert (out / ".lock").read_text() == str(os.getppid())
    assert main(args) == 0
    assert not (out / ".lock").exists() and (out / "genotype.json").is_file()


def test_files_keep_the_umask_mode(tmp_path):
    from pcdarts.files import atomic_write_json

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
