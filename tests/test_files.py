"""pcdarts.files: a run's files are read back bounded and checked, so a damaged one is named in one line."""

import json
import os
import struct
import zipfile

import pytest
import torch

import pcdarts.files
from pcdarts.cli import main
from pcdarts.errors import RunError
from pcdarts.files import (
    MAX_LOG_BYTES,
    is_run_folder,
    load_checkpoint,
    read_jsonl,
    read_run_json,
    save_checkpoint,
)
from tests.conftest import one_line
from tests.tiny import train_state


# ------------------------------------------------------------ checkpoints
def test_a_damaged_checkpoint_is_refused_by_its_crc(tmp_path, capsys):
    path = tmp_path / "best.pt"
    save_checkpoint(path, train_state())
    with zipfile.ZipFile(path) as z:  # overwrite the first tensor's bytes in place
        info = next(i for i in z.infolist() if "/data/" in i.filename)
    raw = bytearray(path.read_bytes())
    n, m = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])  # the local header's
    start = info.header_offset + 30 + n + m
    raw[start : start + 16] = b"\x7f" * 16
    path.write_bytes(bytes(raw))
    with pytest.raises(RunError, match="fails its CRC check"):
        load_checkpoint(path)
    assert main(["eval", "--checkpoint", str(path)]) == 2
    assert "damaged" in one_line(capsys)


def test_random_bytes_are_a_damaged_file_not_an_unsafe_one(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(RunError, match="damaged or not a checkpoint") as exc:
        load_checkpoint(path)
    assert "safety" not in str(exc.value)


def test_shipped_never_leads_out_of_the_run_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "best.pt", train_state())
    save_checkpoint(tmp_path / "evil.pt", {"kind": "evil"})
    (run / "result.json").write_text(json.dumps({"shipped": "../evil.pt"}))
    assert load_checkpoint(run)["kind"] == "train"


def test_checkpoint_zip_members_are_all_checked(tmp_path):
    """A torch checkpoint is a zip whose members carry CRCs; a good one passes, as it must on every load."""
    path = tmp_path / "ok.pt"
    save_checkpoint(path, {"kind": "x", "t": torch.arange(10)})
    assert load_checkpoint(path)["t"].tolist() == list(range(10))


# ------------------------------------------------------------ JSON files read back from a run folder
def test_run_files_are_read_through_one_checked_helper(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "genotype.json").write_bytes(b'{"normal": "\xff\xfe"}')
    with pytest.raises(RunError, match="not UTF-8"):
        read_run_json(run / "genotype.json")
    assert main(["info", "--genotype", str(run)]) == 2
    assert "not UTF-8" in one_line(capsys)
    (run / "config.json").write_text("[1, 2]")
    with pytest.raises(RunError, match="holds a list, not a dict"):
        read_run_json(run / "config.json")


# ------------------------------------------------------------ JSONL logs
def test_deeply_nested_and_oversized_log_lines_count_as_unreadable(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"epoch": 1}\n' + "[" * 200_000 + "\n" + '{"epoch": 2, "x": "' + "a" * (5 << 20) + '"}\n[1]\n')
    records, bad = read_jsonl(log, count_bad=True)
    assert records == [{"epoch": 1}] and bad == 3


def test_a_log_past_the_size_cap_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    log = tmp_path / "arch_history.jsonl"
    log.write_text('{"epoch": 1}\n' * 100)
    monkeypatch.setattr(pcdarts.files, "MAX_LOG_BYTES", 500)
    with pytest.raises(RunError, match="more than a pcdarts log holds"):
        read_jsonl(log)
    assert MAX_LOG_BYTES >= 64 << 20  # the real cap leaves room for a 10,000-epoch history


def test_a_log_of_too_many_lines_is_refused(tmp_path, monkeypatch):
    log = tmp_path / "metrics.jsonl"
    log.write_text("{}\n" * 50)
    monkeypatch.setattr(pcdarts.files, "MAX_LOG_RECORDS", 20)
    with pytest.raises(RunError, match="more than 20 lines"):
        read_jsonl(log)


# ------------------------------------------------------------ run folders
def test_a_real_run_is_recognised_by_its_own_marker(tiny_train):
    assert is_run_folder(tiny_train)
    env = json.loads((tiny_train / "environment.json").read_text())
    assert isinstance(env["pcdarts"], str) and "torch" in env


def test_files_keep_the_umask_mode(tmp_path):
    from pcdarts.files import atomic_write_json

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
