"""data.cifar: a CIFAR-style archive loaded, hostile pickles and batches of the wrong kind refused (not cast);
downloads from a local server checked and bounded."""

import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from pcdarts.cli import main
from pcdarts.data import (
    DataError,
    get_dataset,
    make_stream,
    train_part,
)
from pcdarts.data.cifar import download, load_cifar10
from pcdarts.errors import PCDartsError
from tests.cifar_data import cifar_archive


def _archive(tmp_path, batch_1):
    archive = tmp_path / "cifar-10-python.tar.gz"
    cifar_archive(archive)
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
    _archive(tmp_path, damage)
    with pytest.raises(PCDartsError, match=message):
        load_cifar10(data=str(tmp_path))


def test_cifar_pixels_stored_as_wider_integers_in_range_still_load(tmp_path):
    _archive(tmp_path, lambda b: b.update({b"data": b[b"data"].astype(np.int64)}))
    assert load_cifar10(data=str(tmp_path)).train_x.dtype.is_floating_point is False


def test_negative_cifar_labels_are_refused(tmp_path):
    _archive(tmp_path, lambda b: b[b"labels"].__setitem__(0, -1))
    with pytest.raises(PCDartsError, match="outside 0..9"):
        load_cifar10(data=str(tmp_path))


def test_a_download_larger_than_any_archive_is_cut_off(tmp_path):
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


def test_cifar_archive_loads_to_the_right_shapes_and_labels(tmp_path):
    data, labels = cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    for source in (tmp_path / "cifar-10-python.tar.gz", tmp_path):
        ds = get_dataset("cifar10", data=str(source))
        assert ds.train_x.shape == (30, 3, 32, 32) and ds.train_x.dtype == torch.uint8
        assert ds.test_x.shape == (4, 3, 32, 32)
        assert ds.train_y.tolist() == labels[:30] and ds.test_y.tolist() == labels[30:]
        assert torch.equal(ds.train_x[0], torch.from_numpy(data[0].reshape(3, 32, 32)))
        assert ds.classes[:2] == ["c0", "c1"]
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    assert get_dataset("cifar10", data=str(tmp_path / "x")).train_x.shape[0] == 30
    s = make_stream(ds, train_part(ds), 8, train=True, seed=0)
    x, y = s.next_batch()
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32


def test_hostile_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / n).write_bytes(pickle.dumps(Evil()))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        get_dataset("cifar10", data=str(tmp_path))


class _Server:
    def __init__(self, root: Path):
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)  # noqa: E731
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    cifar_archive(root / "cifar-10-python.tar.gz")
    raw = (root / "cifar-10-python.tar.gz").read_bytes()
    (root / "truncated.tar.gz").write_bytes(raw[: len(raw) // 2])
    s = _Server(root)
    yield s, hashlib.md5(raw).hexdigest()
    s.close()


def test_download_good_truncated_and_wrong_checksum(server, tmp_path):
    srv, md5 = server
    got = download(f"{srv.url}/cifar-10-python.tar.gz", tmp_path / "a" / "c.tar.gz", md5)
    assert got.is_file() and get_dataset("cifar10", data=str(got)).train_x.shape[0] == 30
    with pytest.raises(DataError, match="checksum mismatch"):
        download(f"{srv.url}/truncated.tar.gz", tmp_path / "b" / "c.tar.gz", md5)
    assert not any((tmp_path / "b").iterdir())  # the partial file was never kept
    with pytest.raises(DataError, match="checksum mismatch"):
        download(f"{srv.url}/cifar-10-python.tar.gz", tmp_path / "c" / "c.tar.gz", "0" * 32)
    assert not (tmp_path / "c" / "c.tar.gz").exists()
    with pytest.raises(DataError, match="download of"):
        download(f"{srv.url}/missing.tar.gz", tmp_path / "d" / "c.tar.gz", md5)


def test_checksum_failure_from_the_cli_is_one_line_exit_2(server, tmp_path, capsys, monkeypatch):
    srv, _ = server
    from pcdarts.data import cifar

    monkeypatch.setitem(cifar.CIFAR["cifar10"], "url", f"{srv.url}/truncated.tar.gz")
    code = main(
        [
            "search",
            "--dataset",
            "cifar10",
            "--download",
            "--data",
            str(tmp_path / "dl"),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--warmup-epochs",
            "0",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "checksum mismatch" in err and len(err.splitlines()) == 1
    assert not list((tmp_path / "dl").glob("*.tar.gz"))
