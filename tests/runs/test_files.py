"""What 160 break attempts found: user files kept, damaged files named, hostile input one line, bounds."""

import errno
import gzip
import json
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from pcdarts.cli import COMMANDS, main
from pcdarts.data.idx import _read_bytes, read_idx
from pcdarts.deploy import load_trained
from pcdarts.errors import PCDartsError, RunError
from pcdarts.files import load_checkpoint, read_run_json, save_checkpoint
from pcdarts.nas.genotype import GENOTYPES, GenotypeError, parse_genotype_text
from pcdarts.nas.network import build_network
from pcdarts.runs.rundir import RunDir, check_out_path
from tests.tiny import TINY_SEARCH


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# ------------------------------------------------------------ 1, 2: the user's files and folders
def test_a_folder_of_the_users_own_files_is_refused_and_left_as_it_was(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true}')
    (out / "arch.json").write_text("my notes")
    assert main(["search", *TINY_SEARCH, "--out", str(out)]) == 2
    assert "not empty and holds no pcdarts run" in _one_line(capsys)
    assert (out / "config.json").read_text() == '{"mine": true}' and (out / "arch.json").read_text() == "my notes"
    assert sorted(p.name for p in out.iterdir()) == ["arch.json", "config.json"]


def test_overwrite_removes_only_what_the_run_wrote(tmp_path):
    out = tmp_path / "run"
    RunDir(out, kind="search", final="genotype.json")
    for name in ("checkpoint.pt", "metrics.jsonl", "genotype.json"):
        (out / name).write_text("old run")
    (out / "environment.json").write_text('{"pcdarts": "0.1.0", "torch": "2.13.0"}')  # what marks a run
    (out / "tb").mkdir()
    (out / "tb" / "events.out.tfevents.1.host").write_text("old events")
    (out / "tb" / "my_notes.txt").write_text("keep me")
    (out / "paper.pdf").write_text("keep me too")
    RunDir(out, kind="search", overwrite=True, final="genotype.json")
    assert sorted(p.name for p in out.iterdir()) == ["paper.pdf", "tb"]
    assert [p.name for p in (out / "tb").iterdir()] == ["my_notes.txt"]


@pytest.mark.parametrize("target", ["/", "/usr", "~"])
def test_obviously_wrong_targets_are_refused(target, capsys):
    with pytest.raises(RunError, match="refusing to write a run into"):
        check_out_path(target)
    assert main(["search", *TINY_SEARCH, "--out", target]) == 2
    assert "refusing to write a run into" in _one_line(capsys)
    assert not Path("/.lock").exists()


# ------------------------------------------------------------ 3, 6, 9: checkpoints
def _train_state(genotype="DARTS_V2", weights_of="DARTS_V2"):
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


def test_a_damaged_checkpoint_is_refused_by_its_crc(tmp_path, capsys):
    path = tmp_path / "best.pt"
    save_checkpoint(path, _train_state())
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
    assert "damaged" in _one_line(capsys)


def test_random_bytes_are_a_damaged_file_not_an_unsafe_one(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(RunError, match="damaged or not a checkpoint") as exc:
        load_checkpoint(path)
    assert "safety" not in str(exc.value)


def test_shipped_never_leads_out_of_the_run_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "best.pt", _train_state())
    save_checkpoint(tmp_path / "evil.pt", {"kind": "evil"})
    (run / "result.json").write_text(json.dumps({"shipped": "../evil.pt"}))
    assert load_checkpoint(run)["kind"] == "train"


def test_checkpoints_that_load_but_do_not_fit_are_one_line(tmp_path, capsys):
    state = _train_state()
    del state["model_args"]
    save_checkpoint(tmp_path / "a.pt", state)
    with pytest.raises(RunError, match="lacks model_args"):
        load_trained(tmp_path / "a.pt")
    save_checkpoint(tmp_path / "b.pt", _train_state(genotype="DARTS_V1", weights_of="PC_DARTS_cifar"))
    with pytest.raises(RunError, match="do not fit its genotype"):
        load_trained(tmp_path / "b.pt")
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "checkpoint.pt", {"kind": "search"})
    assert main(["search", *TINY_SEARCH, "--out", str(run), "--resume"]) == 2
    assert "lacks config" in _one_line(capsys)


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    out = tmp_path_factory.mktemp("nl") / "search"
    assert main(["search", *TINY_SEARCH, "--out", str(out)]) == 0
    return out


def test_a_config_of_the_wrong_shape_on_resume_is_one_line_or_the_checkpoint_is_used(finished_search, capsys, caplog):
    cfg = finished_search / "config.json"
    good = cfg.read_text()
    try:
        cfg.write_text(json.dumps({**json.loads(good), "epochs": "3", "layers": None}))
        assert main(["search", "--resume", "--out", str(finished_search), "--no-progress"]) == 2
        assert "wrong type (epochs)" in _one_line(capsys)
        cfg.write_text("[]")  # unreadable as a config: the checkpoint's copy is used
        assert main(["search", "--resume", "--out", str(finished_search), "--no-progress"]) == 0
        assert "is unreadable: resuming with the settings" in caplog.text
    finally:
        cfg.write_text(good)


# ------------------------------------------------------------ 4: IDX gzip bomb
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


# ------------------------------------------------------------ 7, 11: genotype text and long messages
@pytest.mark.parametrize(
    "text",
    [
        "Genotype(normal=a" + ".b" * 20000 + ")",
        "Genotype(" + "+".join(["1"] * 30000) + ")",
        "Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=range(0, 12345678901234567890))",
        "Genotype(" + "(" * 5000 + ")" * 5000 + ")",
    ],
    ids=["attribute-chain", "long-sum", "huge-range", "deep-nesting"],
)
def test_hostile_genotype_text_is_one_line(text, capsys):
    with pytest.raises(GenotypeError):
        parse_genotype_text(text)
    assert main(["info", "--genotype", text]) == 2
    _one_line(capsys)


def test_quoted_user_text_is_cut_to_a_readable_line(tmp_path, capsys):
    g = {"normal": [["x" * 300_000, 0], ["skip_connect", 1]], "normal_concat": [2],
         "reduce": [["skip_connect", 0], ["skip_connect", 1]], "reduce_concat": [2]}  # fmt: skip
    (tmp_path / "genotype.json").write_text(json.dumps(g))
    assert main(["info", "--genotype", str(tmp_path / "genotype.json")]) == 2
    assert len(_one_line(capsys)) < 600


# ------------------------------------------------------------ 8, 10: files read back from a run folder
def test_run_files_are_read_through_one_checked_helper(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "genotype.json").write_bytes(b'{"normal": "\xff\xfe"}')
    with pytest.raises(RunError, match="not UTF-8"):
        read_run_json(run / "genotype.json")
    assert main(["info", "--genotype", str(run)]) == 2
    assert "not UTF-8" in _one_line(capsys)
    (run / "config.json").write_text("[1, 2]")
    with pytest.raises(RunError, match="holds a list, not a dict"):
        read_run_json(run / "config.json")


def test_a_report_of_a_damaged_run_shows_what_it_can_and_names_the_rest(tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    g = GENOTYPES["DARTS_V2"].to_dict()
    (run / "result.json").write_text(json.dumps({"test_accuracy": "high", "genotype": g, "params": "many"}))
    (run / "metrics.jsonl").write_text('{"epoch": "x", "train_loss": 1.0}\n{"epoch": 0, "train_loss": 0.5}\n')
    (run / "config.json").write_text("{not json")
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "malformed epoch" in page and "high" in page
    (run / "result.json").write_text(json.dumps({"genotype": {"normal": "x"}}))
    assert main(["report", str(run)]) == 0
    assert "not a valid cell" in (run / "report.html").read_text()
    (run / "result.json").write_bytes(b"\xff")
    assert main(["report", str(run)]) == 0
    assert "result.json is not UTF-8" in caplog.text and "could not be used" in (run / "report.html").read_text()


# ------------------------------------------------------------ 11: the disk-full message names the place
def test_disk_full_names_where_it_was_writing(tmp_path, capsys, monkeypatch):
    def full(ns):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setitem(COMMANDS, "search", full)
    assert main(["search", "--out", str(tmp_path / "r")]) == 2
    err = _one_line(capsys)
    assert f"error: {tmp_path / 'r'}: No space left on device" in err and "::" not in err


# ------------------------------------------------------------ 13: downloads are bounded
def test_a_download_larger_than_any_archive_is_cut_off(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from pcdarts.data.cifar import download

    class Endless(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with pytest.raises(PCDartsError, match="more than a dataset archive"):
            download(f"http://127.0.0.1:{srv.server_port}/x.tar.gz", tmp_path / "x.tar.gz", "0" * 32, max_bytes=1 << 20)
        assert not (tmp_path / "x.tar.gz").exists() and not (tmp_path / "x.tar.gz.part").exists()
    finally:
        srv.shutdown()


def test_negative_cifar_labels_are_refused(tmp_path):
    from pcdarts.data.cifar import load_cifar10
    from tests.data.test_datasets import _cifar_archive

    archive = tmp_path / "cifar-10-python.tar.gz"
    _cifar_archive(archive)
    import pickle
    import tarfile

    with tarfile.open(archive) as tar:  # rewrite one batch with a negative label
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    name = next(n for n in members if n.endswith("data_batch_1"))
    batch = pickle.loads(members[name], encoding="bytes")
    batch[b"labels"][0] = -1
    members[name] = pickle.dumps(batch)
    with tarfile.open(archive, "w:gz") as tar:
        import io

        for n, data in members.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(PCDartsError, match="outside 0..9"):
        load_cifar10(data=str(tmp_path))


def test_checkpoint_zip_members_are_all_checked(tmp_path):
    """A torch checkpoint is a zip whose members carry CRCs; a good one passes, as it must on every load."""
    path = tmp_path / "ok.pt"
    save_checkpoint(path, {"kind": "x", "t": torch.arange(10)})
    assert load_checkpoint(path)["t"].tolist() == list(range(10))
