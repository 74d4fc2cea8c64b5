"""CIFAR archives and their download: batches of the wrong kind refused, not cast; downloads bounded."""

import io
import pickle
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from pcdarts.data.cifar import download, load_cifar10
from pcdarts.errors import PCDartsError
from tests.data.test_datasets import _cifar_archive


def _archive(tmp_path, batch_1):
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
